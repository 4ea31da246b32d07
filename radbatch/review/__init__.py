"""`radbatch review`: queue the least confident rows of a head for a person, and read their answers back
as gold__ columns (`radbatch review-import`). Everything written holds report text and is owner-only."""
