"""Reading submitted requests: OpenAI batch JSONL or the short form, validated line by line."""
