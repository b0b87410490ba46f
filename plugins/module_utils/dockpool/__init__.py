"""The dockpool core: specs, images, placement and instances on one Docker engine.

Imported by the Ansible modules (as ansible.module_utils.dockpool), the HTTP
service and the disk watchdog (as dockpool). It never imports Ansible or Bottle;
failures are the typed errors of ``errors``, which each caller maps once.
"""

__version__ = "0.1.0"
