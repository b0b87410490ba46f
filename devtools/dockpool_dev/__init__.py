"""Developers' tools, never shipped to a provider: a CA for test certificates (devca), a fleet of
API processes on this machine's loopback addresses (localfleet), and what the tests and the
benchmarks both use to run real parts (one copy, imported by both; tests/support re-exports it):
a test provider's settings (api_config), the API as a process (api_process), two or three
providers on two engines (two_providers, second_engine), an SSH client (ssh), the CLI (cli),
an nginx TLS front (tls_front), ansible-playbook (ansible_run), bounded waiting (waiting)."""
