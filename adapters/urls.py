from django.urls import path

from adapters import civitai_views, detail_views, problem_views, tag_views, views

app_name = "adapters"

urlpatterns = [
    path("", views.library, name="library"),
    path("scans/", views.start_scan, name="start_scan"),
    path("scans/<int:pk>/", views.scan_status, name="scan_status"),
    path("problems/", problem_views.problems, name="problems"),
    path("bulk/", views.bulk, name="bulk"),
    path("bulk/<int:pk>/undo/", views.undo, name="undo"),
    path("civitai/", civitai_views.start, name="civitai_start"),
    path("civitai/<int:pk>/", civitai_views.status, name="civitai_status"),
    path("civitai/<int:pk>/cancel/", civitai_views.cancel, name="civitai_cancel"),
    path("preferences/nsfw/", civitai_views.nsfw_preference, name="nsfw_preference"),
    path("<int:pk>/civitai/", civitai_views.lookup_adapter, name="civitai_adapter"),
    path("tags/", tag_views.tags, name="tags"),
    path("tags/suggest/", tag_views.suggest, name="tag_suggest"),
    path("tags/merge/", tag_views.merge, name="tag_merge"),
    path("tags/<int:pk>/rename/", tag_views.rename, name="tag_rename"),
    path("tags/<int:pk>/delete/", tag_views.delete, name="tag_delete"),
    path("<int:pk>/", detail_views.detail, name="detail"),
    path("<int:pk>/section/<str:section>/", detail_views.section, name="section"),
    path("<int:pk>/section/<str:section>/edit/", detail_views.edit, name="edit"),
    path("<int:pk>/toggle/<str:field>/", detail_views.toggle, name="toggle"),
    path("<int:pk>/trigger-words/", detail_views.add_trigger_word, name="add_trigger_word"),
    path("<int:pk>/preview/<str:size>", views.preview, name="preview"),
]
