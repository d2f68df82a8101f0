"""Fleet-wide rpm/tpm/itpm/otpm limits: reserved before a call, corrected after it, atomic in Redis.

Each limit key (a deployment, or a ``limit_group`` shared by deployments using one provider
key) is a pair of GCRA schedules (generic cell rate algorithm): one for requests, one for
tokens; with itpm or otpm, two more for input and output tokens. A reservation hands out
*send times* spaced at the limit's rate (minus a small headroom), so the allowance of a
minute is spread evenly over it, never spent in a burst.
``redis_backend`` runs the decision as one Lua script (any number of processes and machines);
``memory_backend`` runs the same decision in-process for embedded mode.
"""
