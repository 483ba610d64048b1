"""Domain records loaded from the database with their secrets decrypted, for the kernel.

Below both ``entities/`` (the API) and ``dispatch/`` (the loops): each needs tenants, accounts and
storage mounts as ``models`` values, and neither may import the other. Nothing here builds an API
answer: these values hold decrypted secrets and never leave the service.
"""
