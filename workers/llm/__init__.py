"""OpenAI-compatible LLM access: endpoints from settings, a retrying caller, and a test peer."""
