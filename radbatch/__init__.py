"""radbatch: annotate radiology report archives with small fine-tuned LLMs on CPUs."""

__version__ = "0.1.0"
