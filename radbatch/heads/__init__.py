"""The task registry: recipes -> typed heads (answers, prompts, Arrow types), models.toml and routing."""
