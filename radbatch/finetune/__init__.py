"""`radbatch finetune`: labelled archive -> chat samples -> LoRA training -> GGUF adapter checks."""
