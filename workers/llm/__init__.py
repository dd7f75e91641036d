"""OpenAI-compatible LLM access: endpoints from settings and a retrying caller (the test peer lives in
tests/llm_peer/)."""
