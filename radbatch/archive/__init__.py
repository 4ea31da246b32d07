"""Report archives: strict Parquet/CSV reading, content identity, sections, priors, private files, object storage."""
