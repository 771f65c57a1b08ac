from django.urls import path

from generation import job_views, result_views, sweep_views, views

app_name = "generation"

urlpatterns = [
    path("", views.compose, name="compose"),
    path("preview/", views.preview, name="preview"),
    path("submit/", views.submit, name="submit"),
    path("loras/search/", views.lora_search, name="lora_search"),
    path("loras/row/", views.lora_row, name="lora_row"),
    path("backend/", views.backend_status, name="backend"),
    path("backend/refresh-loras/", views.refresh_loras, name="refresh_loras"),
    path("presets/", views.save_preset, name="save_preset"),
    path("presets/<int:pk>/delete/", views.delete_preset, name="delete_preset"),
    path("jobs/", job_views.jobs, name="jobs"),
    path("jobs/queue/", job_views.queue_fragment, name="queue"),
    path("jobs/recent/", job_views.recent_fragment, name="recent"),
    path("jobs/<int:pk>/", job_views.job, name="job"),
    path("jobs/<int:pk>/panel/", job_views.job_panel, name="job_panel"),
    path("jobs/<int:pk>/cancel/", job_views.cancel, name="cancel"),
    path("jobs/<int:pk>/rerun/", job_views.rerun, name="rerun"),
    path("jobs/<int:pk>/images/<int:index>/<str:kind>", job_views.image, name="image"),
    path("history/", job_views.history_page, name="history"),
    path("history/delete/", result_views.bulk_delete, name="bulk_delete"),
    path("jobs/<int:pk>/results/", result_views.job_results, name="job_results"),
    path("jobs/<int:pk>/pin/", result_views.pin, name="pin"),
    path("jobs/<int:pk>/images/delete/", result_views.delete_images, name="delete_images"),
    path("images/<int:image_id>/rate/", result_views.rate, name="rate"),
    path("images/<int:image_id>/set-preview/", result_views.set_preview, name="set_preview"),
    path("curation/", result_views.curation, name="curation"),
    path("curation/run/", result_views.run_retention, name="run_retention"),
    path("adapters/<int:pk>/results/", result_views.adapter_results, name="adapter_results"),
    path("adapters/<int:pk>/sweep/", sweep_views.start, name="start_sweep"),
    path("sweeps/<int:pk>/", sweep_views.sweep, name="sweep"),
    path("sweeps/<int:pk>/panel/", sweep_views.sweep_panel, name="sweep_panel"),
    path("sweeps/<int:pk>/grid.png", sweep_views.grid, name="sweep_grid"),
]
