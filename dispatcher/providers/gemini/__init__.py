"""Gemini (``gemini/<model>``) through Google's OpenAI-compatible endpoint."""
