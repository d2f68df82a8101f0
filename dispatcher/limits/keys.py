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
