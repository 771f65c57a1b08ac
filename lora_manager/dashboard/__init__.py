"""The dashboard (home page): its figures (``figures``), the activity feed (``activity_feed``), their charts
as plain geometry (``charts``, the markup is in ``templates/lora_manager/dashboard/``), and the views of the
dashboard and the status page."""
