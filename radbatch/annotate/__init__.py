"""annotate's stages: plan (the job) -> rows (prepare / assemble) -> output parts -> finalize; retry."""
