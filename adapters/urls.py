from django.urls import path

from adapters.views import civitai, detail, gallery, problems, tags

app_name = "adapters"

urlpatterns = [
    path("", gallery.library, name="library"),
    path("scans/", gallery.start_scan, name="start_scan"),
    path("scans/<int:pk>/", gallery.scan_status, name="scan_status"),
    path("problems/", problems.problems, name="problems"),
    path("bulk/", gallery.bulk, name="bulk"),
    path("bulk/<int:pk>/undo/", gallery.undo, name="undo"),
    path("civitai/", civitai.start, name="civitai_start"),
    path("civitai/<int:pk>/", civitai.status, name="civitai_status"),
    path("civitai/<int:pk>/cancel/", civitai.cancel, name="civitai_cancel"),
    path("preferences/nsfw/", civitai.nsfw_preference, name="nsfw_preference"),
    path("<int:pk>/civitai/", civitai.lookup_adapter, name="civitai_adapter"),
    path("tags/", tags.tags, name="tags"),
    path("tags/suggest/", tags.suggest, name="tag_suggest"),
    path("tags/merge/", tags.merge, name="tag_merge"),
    path("tags/<int:pk>/rename/", tags.rename, name="tag_rename"),
    path("tags/<int:pk>/delete/", tags.delete, name="tag_delete"),
    path("<int:pk>/", detail.detail, name="detail"),
    path("<int:pk>/section/<str:section>/", detail.section, name="section"),
    path("<int:pk>/section/<str:section>/edit/", detail.edit, name="edit"),
    path("<int:pk>/toggle/<str:field>/", detail.toggle, name="toggle"),
    path("<int:pk>/trigger-words/", detail.add_trigger_word, name="add_trigger_word"),
    path("<int:pk>/preview/<str:size>", gallery.preview, name="preview"),
]
