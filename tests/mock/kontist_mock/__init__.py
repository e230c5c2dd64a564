"""Mock of the Kontist API used by the kontist-auth integration tests.

The package is split by concern:

- ``tlsfiles``  throwaway CA and server certificates (including the broken ones)
- ``jwt``       HS256 access tokens
- ``users``     loading the users/clients file
- ``faults``    fault specifications and their matching rules
- ``api``       the Kontist endpoints and the bank's in-memory state
- ``server``    HTTPS transport, request log, fault delivery, control endpoint
- ``main``      command line

Run it through the ``kontist-mock`` script next to this directory.
"""
