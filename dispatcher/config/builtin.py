"""The configuration used when no file is found: one ``mock`` group, no keys, no services."""

BUILTIN_CONFIG = """
model_list:
  - model_name: mock
    litellm_params:
      model: mock/echo
      mock_latency_ms: 20
      mock_latency_jitter_ms: 10
    model_info: {id: mock-1}
dispatcher_settings:
  default_model: mock
"""
