"""`radbatch sample`: synthetic radiology reports with gold labels for all nine task heads.

Facts are decided first and the text is written from them, so every gold value is true by
construction. Import cost stays small: the Click command imports the generator only when it runs.
"""
