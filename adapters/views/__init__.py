"""The adapters app's pages, one module per page family (gallery, detail, tags, problems, Civitai)."""
