"""dockpool's client: get an instance from a provider and reach it by SSH.

Depends only on requests and rich, so it installs anywhere with pip (see
pyproject.toml); it talks to providers through their HTTP API only.
"""
