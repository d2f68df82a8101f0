"""Redis key names of the limits and routing state, in one place."""


def limit_hash(namespace: str, limit_key: str) -> str:
    return f"{namespace}:limit:{limit_key}"


def usage_prefix(namespace: str) -> str:
    """The Lua script appends '<limit hash key>:<minute>' to this."""
    return f"{namespace}:usage:"


def usage_hash(namespace: str, limit_key: str, minute: int) -> str:
    return f"{usage_prefix(namespace)}{limit_hash(namespace, limit_key)}:{minute}"


def routing_hash(namespace: str, deployment_id: str) -> str:
    return f"{namespace}:routing:{deployment_id}"


def cooldown_key(namespace: str, deployment_id: str) -> str:
    """Holds the end of a deployment's cooldown (expires with it)."""
    return f"{namespace}:cooldown:{deployment_id}"


def failures_key(namespace: str, deployment_id: str) -> str:
    """Counts a deployment's failures over the last minute (for allowed_fails)."""
    return f"{namespace}:fails:{deployment_id}"


def spend_key(namespace: str, scope: str, period_index: int) -> str:
    """USD spent by a budget scope ("provider:openai", "deployment:<id>") in one period."""
    return f"{namespace}:spend:{scope}:{period_index}"
