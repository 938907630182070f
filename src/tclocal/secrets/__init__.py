"""The secrets service: named JSON secrets with an expiry."""
