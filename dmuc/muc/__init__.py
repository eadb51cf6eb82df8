"""
The XEP-0045 model shared by the master and the mirror: roles and
affiliations, occupants, room configuration and its forms, history
selection, and the occupant presences both sides send.
"""
