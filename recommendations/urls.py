from django.urls import path

from recommendations import views

app_name = "recommendations"

urlpatterns = [
    path("", views.page, name="page"),
    path("similar/<int:adapter_id>/", views.similar, name="similar"),
    path("similar/<int:adapter_id>.json", views.similar_json, name="similar_json"),
    path("for-prompt/", views.for_prompt, name="for_prompt"),
    path("for-prompt.json", views.for_prompt_json, name="for_prompt_json"),
    path("feedback/", views.give_feedback, name="feedback"),
    path("embed/", views.start_embedding, name="start_embedding"),
    path("embed/<int:pk>/", views.embedding_status, name="embedding_status"),
    path("status/", views.status_fragment, name="status"),
    path("status.json", views.status_json, name="status_json"),
]
