from django.urls import path

from archive import views

app_name = "archive"

urlpatterns = [
    path("", views.page, name="page"),
    path("export/", views.export, name="export"),
    path("upload/", views.upload, name="upload"),
    path("runs/<int:pk>/", views.run_page, name="run"),
    path("runs/<int:pk>/status/", views.run_status, name="run_status"),
    path("runs/<int:pk>/import/", views.confirm, name="confirm"),
    path("runs/<int:pk>/download/", views.download, name="download"),
    path("backups/", views.backup_now, name="backup_now"),
    path("backups/<str:name>", views.backup_download, name="backup_download"),
    path("backups/<str:name>/restore/", views.backup_restore, name="backup_restore"),
]
