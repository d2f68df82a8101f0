"""Azure OpenAI (``azure/<deployment>``): OpenAI's protocol at Azure's URLs, keys and errors."""
