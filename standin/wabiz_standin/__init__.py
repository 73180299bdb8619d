"""The wabiz stand-in cluster: master, coreapp and webapp services of a WhatsApp Business API
client HA cluster, on MySQL/MariaDB or PostgreSQL. See docs/standin.md."""

__all__ = ["__version__"]
__version__ = "2.53.2"
