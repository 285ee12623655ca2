"""TLS for Dockyard: issuing a private CA and server certificate, describing and checking them."""
