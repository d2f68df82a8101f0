"""Provider adapters behind one small interface (``base.Provider``) and their error taxonomy.

``registry`` maps a ``<provider>/`` prefix to an adapter; ``provider_set.ProviderSet`` builds
one adapter per deployment for a worker process.
"""
