"""Anthropic's Messages API behind the OpenAI chat-completions format.

``request`` turns an OpenAI chat body into a Messages body (and says, at submit time, why a
body cannot be sent); ``response`` turns a Message back into a ``chat.completion``;
``errors`` is the one place Anthropic's errors become ours; ``adapter`` makes the call.
"""
