"""The generation app's views: composer (compose, preview, submit, presets), jobs (queue, job pages,
history), results (ratings, curation, retention), sweeps and recipes. Context builders shared with the
consumers live in ``generation.page_context``."""
