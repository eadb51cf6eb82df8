"""The C{twistd dmuc} plugin: see L{dmuc.tap}."""

from twisted.application.service import ServiceMaker

dmuc = ServiceMaker(
    "dmuc",
    "dmuc.tap",
    "Distributed multi-user chat (XEP-0045 master, mirrors, link monitor)",
    "dmuc",
)
