"""Django's PostgreSQL backend with a pool that checks connections without a round trip
(``base``)."""
