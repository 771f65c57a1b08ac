"""Running the app's processes (outside the Django package): the supervisor of `make run`."""
