"""
One server-to-server stream, either way: the negotiation (RFC 6120
STARTTLS, SASL EXTERNAL as XEP-0178 profiles it, XEP-0220 dialback with
XEP-0185 keys, XEP-0138 compression) and the checks on what arrives.

An S2S stream carries stanzas one way only: from the B{originating}
server, which opened it, to the B{receiving} server.  The receiving server
learns who is speaking by the originator's certificate (EXTERNAL) or by
asking the originator's B{authoritative} server whether a dialback key is
genuine (a C{db:verify} on a second stream).

These authenticators only negotiate and judge; the L{S2SServer} that owns
them decides what a stream is for and gets the outcome through
C{stream_ready}, C{stream_failed} and the inbound checks' C{deliver}.
"""

import base64
import binascii

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish

from dmuc.s2s import compression
from dmuc.xmpp.stanzas import parse_jid

log = Logger(namespace="dmuc.s2s")

NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = xmlstream.NS_XMPP_TLS
STANZA_NAMES = ("message", "presence", "iq")


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185: HMAC-SHA256 keyed by SHA256(secret), the same formula as
    Prosody's, so a shared C{dialback_secret} verifies either way."""
    from wokkel.server import generateKey
    return generateKey(secret, receiving, originating, stream_id)


class NegotiationFailed(Exception):
    """A stream could not be authenticated; the message says why, for the
    operator."""


def _prepare(xs):
    xs.namespace = NS_SERVER
    xs.prefixes = {xmlstream.NS_STREAMS: "stream", NS_DIALBACK: "db"}


# -- the originating side


class OutgoingAuthenticator(xmlstream.ConnectAuthenticator):
    """
    Opens a stream from C{local} to C{remote}: STARTTLS, then EXTERNAL when
    we have a certificate and the peer offers it, else dialback; then
    compression when C{compress}.  With C{verify} set (a C{(stream_id,
    key)}), the stream is instead the receiving server's question to an
    authoritative one: it sends one C{db:verify} after TLS and no stanza.
    """

    namespace = NS_SERVER

    def __init__(self, policy, local, remote, compress=False, verify=None):
        xmlstream.ConnectAuthenticator.__init__(self, remote)
        self.policy = policy
        self.local = local
        self.remote = remote
        self.compress = compress
        self.verify = verify
        self.tls = None
        self.authentication = None     # "certificate" or "dialback"
        self.verdict = None            # the answer to a db:verify

    def connectionMade(self):
        _prepare(self.xmlstream)
        self.xmlstream.thisEntity = jid.internJID(self.local)
        xmlstream.ConnectAuthenticator.connectionMade(self)

    def associateWithStream(self, xs):
        xmlstream.ConnectAuthenticator.associateWithStream(self, xs)
        self.tls = self.policy.tls.client(self.remote)
        starttls = xmlstream.TLSInitiatingInitializer(
            xs, required=self.policy.require_encryption,
            configurationForTLS=self.tls)
        if self.verify is not None:
            xs.initializers = [starttls, _VerifyInitializer(self)]
        else:
            xs.initializers = [starttls, _AuthenticateInitializer(self),
                               compression.CompressionInitializer(xs, wanted=self.compress)]

    def tls_done(self):
        return self.tls is not None and self.tls.connection is not None


class _AuthenticateInitializer:
    """EXTERNAL when possible, else dialback; the certificate policy first."""

    def __init__(self, authenticator):
        self.auth = authenticator
        self.xmlstream = authenticator.xmlstream

    def initialize(self):
        auth, policy = self.auth, self.auth.policy
        trusted, why = (auth.tls.verdict(auth.remote) if auth.tls_done()
                        else (False, "no TLS"))
        if policy.secure_auth and not trusted:
            raise NegotiationFailed("%s is not trusted: %s (secure_auth is on)"
                                    % (auth.remote, why))
        if policy.tls.has_certificate and auth.tls_done() and _offers_external(self.xmlstream):
            return self._external()
        return self._dialback()

    def _external(self):
        d = defer.Deferred()
        xs = self.xmlstream

        def success(_):
            xs.removeObserver("/failure", failure)
            self.auth.authentication = "certificate"
            xs.reset()
            xs.sendHeader()
            d.callback(xmlstream.Reset)

        def failure(element):
            xs.removeObserver("/success", success)
            condition = _first_child_name(element) or "failure"
            if self.auth.policy.secure_auth:
                d.errback(NegotiationFailed("%s refused our certificate (SASL %s)"
                                            % (self.auth.remote, condition)))
            else:
                log.info("{local} -> {remote}: our certificate was refused (SASL {c}); "
                         "trying dialback", local=self.auth.local, remote=self.auth.remote,
                         c=condition)
                self._dialback().chainDeferred(d)

        xs.addOnetimeObserver("/success", success)
        xs.addOnetimeObserver("/failure", failure)
        request = domish.Element((NS_SASL, "auth"))
        request["mechanism"] = "EXTERNAL"
        request.addContent(base64.b64encode(self.auth.local.encode("utf-8")).decode("ascii"))
        xs.send(request)
        return d

    def _dialback(self):
        auth, xs = self.auth, self.xmlstream
        if not auth.policy.dialback_secret:
            return defer.fail(NegotiationFailed(
                "%s did not accept our certificate and dialback is off" % (auth.remote,)))
        if not (_offers_dialback(xs) or NS_DIALBACK in xs.prefixes):
            return defer.fail(NegotiationFailed("%s offers neither SASL EXTERNAL for us "
                                                "nor dialback" % (auth.remote,)))
        d = defer.Deferred()

        def answered(result):
            if (result.getAttribute("from"), result.getAttribute("to")) != (auth.remote, auth.local):
                return
            xs.removeObserver("/result", answered)
            if result.getAttribute("type") == "valid":
                auth.authentication = "dialback"
                d.callback(None)
            else:
                d.errback(NegotiationFailed("%s refused our dialback key (%s)"
                                            % (auth.remote, result.getAttribute("type"))))

        xs.addObserver("/result", answered)
        result = domish.Element((NS_DIALBACK, "result"))
        result["from"], result["to"] = auth.local, auth.remote
        result.addContent(dialback_key(auth.policy.dialback_secret, auth.remote,
                                       auth.local, xs.sid or ""))
        xs.send(result)
        return d


class _VerifyInitializer:
    """Ask the authoritative server whether a key is genuine."""

    def __init__(self, authenticator):
        self.auth = authenticator
        self.xmlstream = authenticator.xmlstream

    def initialize(self):
        auth, xs = self.auth, self.xmlstream
        stream_id, key = auth.verify
        d = defer.Deferred()

        def answered(answer):
            if answer.getAttribute("id") != stream_id:
                return
            xs.removeObserver("/verify", answered)
            auth.verdict = answer.getAttribute("type") == "valid"
            d.callback(None)

        xs.addObserver("/verify", answered)
        request = domish.Element((NS_DIALBACK, "verify"))
        request["from"], request["to"], request["id"] = auth.local, auth.remote, stream_id
        request.addContent(key)
        xs.send(request)
        return d


def _offers_external(xs):
    mechanisms = xs.features.get((NS_SASL, "mechanisms"))
    return mechanisms is not None and any(
        str(m).strip() == "EXTERNAL" for m in mechanisms.elements(NS_SASL, "mechanism"))


def _offers_dialback(xs):
    return (NS_DIALBACK_FEATURE, "dialback") in xs.features


def _first_child_name(element):
    for child in element.elements():
        return child.name
    return None


# -- the receiving side


class IncomingAuthenticator(xmlstream.ListenAuthenticator):
    """
    A stream another server opened to us.  Offers STARTTLS (required when
    the policy says so), then EXTERNAL for a peer whose certificate names
    the domain it claims, and dialback unless secure auth rules it out;
    answers C{db:verify} for our own domains at any time; and after
    authentication hands each stanza to C{server.deliver} only if its
    C{from} is a domain this stream authenticated and its C{to} one we
    host.

    @ivar authenticated: maps each authenticated originating domain to the
        set of our domains it may address, and how (C{certificate} or
        C{dialback}).
    """

    namespace = NS_SERVER

    def __init__(self, server):
        xmlstream.ListenAuthenticator.__init__(self)
        self.server = server
        self.policy = server.policy
        self.tls = None
        self.claimed = None          # the domain in the header's from
        self.local = None            # the domain in the header's to
        self.authenticated = {}      # originating domain -> how
        self.compressed = False
        self.why_untrusted = ""
        self._observing = False

    @property
    def peer(self):
        return self.claimed or "an unnamed server"

    def streamStarted(self, root):
        xmlstream.ListenAuthenticator.streamStarted(self, root)
        xs = self.xmlstream
        _prepare(xs)
        self._observe()
        if root.uri != xmlstream.NS_STREAMS or root.defaultUri != NS_SERVER:
            return self._refuse("invalid-namespace", "not a server-to-server stream")
        to = root.getAttribute("to")
        if not to or not self.server.hosts(to):
            xs.thisEntity = None
            return self._refuse("host-unknown", "it asked for %r, which we do not host" % (to,))
        claimed = parse_jid(root.getAttribute("from")) if root.hasAttribute("from") else None
        if root.hasAttribute("from") and (claimed is None or claimed.user or claimed.resource):
            return self._refuse("invalid-from", "malformed from %r" % (root.getAttribute("from"),))
        self.local = to
        if claimed is not None:
            self.claimed = claimed.host
        xs.thisEntity = jid.internJID(to)
        xs.otherEntity = None
        xs.sendHeader()
        if xs.version >= (1, 0):
            xs.send(self._features())

    def _observe(self):
        """Observers once per stream, not per restart."""
        if self._observing:
            return
        self._observing = True
        xs = self.xmlstream
        xs.addObserver("/starttls", self._on_starttls)
        xs.addObserver("/auth", self._on_auth)
        xs.addObserver("/result", self._on_result)
        xs.addObserver("/verify", self._on_verify)
        xs.addObserver("/compress", self._on_compress)
        for name in STANZA_NAMES:
            xs.addObserver("/" + name, self._on_stanza)

    def _features(self):
        features = domish.Element((xmlstream.NS_STREAMS, "features"))
        if self.tls is None and self.policy.tls.has_certificate:
            starttls = features.addElement((NS_TLS, "starttls"))
            if self.policy.require_encryption:
                starttls.addElement("required")
            return features
        if self.authenticated:
            if self._may_compress():
                features.addChild(compression.feature())
            return features
        if self.claimed and self._certificate_names(self.claimed):
            mechanisms = features.addElement((NS_SASL, "mechanisms"))
            mechanisms.addElement("mechanism", content="EXTERNAL")
        if self._dialback_allowed():
            dialback = features.addElement((NS_DIALBACK_FEATURE, "dialback"))
            dialback.addElement("errors")
        if self._may_compress():
            features.addChild(compression.feature())
        return features

    def _may_compress(self):
        return (not self.compressed and self.claimed is not None
                and self.claimed in self.policy.compress)

    def _dialback_allowed(self):
        if not self.policy.dialback_secret:
            return False
        return self.tls is not None or not self.policy.require_encryption

    def _certificate_names(self, domain):
        if self.tls is None:
            return False
        trusted, self.why_untrusted = self.tls.verdict(domain)
        return trusted

    def _refuse(self, condition, why):
        log.warn("S2S from {peer}: refused ({condition}): {why}",
                 peer=self.peer, condition=condition, why=why)
        self.xmlstream.sendStreamError(error.StreamError(condition, text=why))

    # -- negotiation

    def _on_starttls(self, element):
        if self.tls is not None or not self.policy.tls.has_certificate:
            return self._refuse("policy-violation", "STARTTLS when it was not offered")
        xs = self.xmlstream
        xs.send(domish.Element((NS_TLS, "proceed")))
        self.tls = self.policy.tls.server()
        xs.transport.startTLS(self.tls)
        xs.reset()

    def _on_auth(self, element):
        xs = self.xmlstream
        mechanism = element.getAttribute("mechanism")
        authzid = _decode_authzid(str(element))
        domain = authzid or self.claimed
        if mechanism != "EXTERNAL" or domain is None:
            return self._sasl_failure("invalid-mechanism", "SASL %s" % (mechanism,))
        if self.authenticated or (self.claimed and domain != self.claimed):
            return self._sasl_failure("invalid-authzid", "authzid %r" % (domain,))
        if not self._certificate_names(domain):
            return self._sasl_failure("not-authorized", "certificate for %s: %s"
                                      % (domain, self.why_untrusted))
        xs.send(domish.Element((NS_SASL, "success")))
        self.claimed = domain
        self._authenticated(domain, "certificate (SASL EXTERNAL)")
        xs.reset()

    def _sasl_failure(self, condition, why):
        log.warn("S2S from {peer}: SASL refused ({condition}): {why}",
                 peer=self.peer, condition=condition, why=why)
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        self.xmlstream.send(failure)

    def _on_result(self, element):
        """A dialback key from an originating server (XEP-0220 2.1)."""
        if element.getAttribute("type"):
            return        # an answer; we never asked on this stream
        originating, receiving = element.getAttribute("from"), element.getAttribute("to")
        if not self.server.hosts(receiving):
            return self._refuse("host-unknown", "dialback for %r, which we do not host"
                                % (receiving,))
        origin = parse_jid(originating)
        if origin is None or origin.user or origin.resource:
            return self._refuse("invalid-from", "dialback from %r" % (originating,))
        if self.tls is None and self.policy.require_encryption:
            return self._refuse("policy-violation", "dialback without TLS, and encryption "
                                "is required")
        if not self.policy.dialback_secret and not self._certificate_names(origin.host):
            return self._dialback_answer(element, False, "dialback is off")
        if self._certificate_names(origin.host):
            return self._dialback_answer(element, True, "certificate")
        if self.policy.secure_auth:
            return self._dialback_answer(element, False, "certificate not trusted (%s) and "
                                         "secure_auth is on" % (self.why_untrusted,))
        d = self.server.verify_dialback(receiving, origin.host, self.xmlstream.sid, str(element))
        d.addCallback(lambda valid: self._dialback_answer(
            element, valid, "dialback" if valid else "the authoritative server said the "
            "key is invalid"))
        d.addErrback(lambda f: self._dialback_answer(
            element, False, "could not ask the authoritative server: %s" % (f.getErrorMessage(),)))

    def _dialback_answer(self, element, valid, how):
        originating, receiving = element["from"], element["to"]
        answer = domish.Element((NS_DIALBACK, "result"))
        answer["from"], answer["to"] = receiving, originating
        answer["type"] = "valid" if valid else "invalid"
        if not self.xmlstream.transport or not self.xmlstream.transport.connected:
            return
        self.xmlstream.send(answer)
        if valid:
            self._authenticated(parse_jid(originating).host,
                                "certificate (dialback)" if how == "certificate" else how,
                                local=receiving)
        else:
            log.warn("S2S from {peer}: dialback for {domain} refused: {why}",
                     peer=self.peer, domain=originating, why=how)

    def _on_verify(self, element):
        """Someone asks whether a key we (as authoritative server) made is
        genuine; answered on any stream, authenticated or not."""
        receiving, originating = element.getAttribute("from"), element.getAttribute("to")
        if not self.server.hosts(originating):
            return self._refuse("host-unknown", "db:verify for %r" % (originating,))
        stream_id = element.getAttribute("id") or ""
        secret = self.policy.dialback_secret
        valid = bool(secret) and str(element).strip() == dialback_key(
            secret, receiving or "", originating, stream_id)
        answer = domish.Element((NS_DIALBACK, "verify"))
        answer["from"], answer["to"], answer["id"] = originating, receiving or "", stream_id
        answer["type"] = "valid" if valid else "invalid"
        self.xmlstream.send(answer)
        log.info("S2S: {receiving} asked whether {originating}'s dialback key is genuine: "
                 "{answer}", receiving=receiving, originating=originating,
                 answer=answer["type"])

    def _on_compress(self, element):
        if not self.authenticated or not self._may_compress():
            failure = domish.Element((compression.NS_COMPRESS, "failure"))
            failure.addElement("setup-failed")
            self.xmlstream.send(failure)
            return
        if compression.answer_compress(self.xmlstream, element):
            self.compressed = True
            log.info("S2S from {peer}: stream compressed (zlib)", peer=self.peer)

    def _authenticated(self, domain, how, local=None):
        first = not self.authenticated
        self.authenticated[domain] = how
        log.info("S2S from {domain} to {local}: authenticated by {how}{tls}",
                 domain=domain, local=local or self.local, how=how,
                 tls="" if self.tls is not None else " (not encrypted)")
        self.server.inbound_authenticated(self, domain)
        if first:
            self.xmlstream.dispatch(self.xmlstream, xmlstream.STREAM_AUTHD_EVENT)

    # -- stanzas

    def _on_stanza(self, stanza):
        stanza.handled = True
        if not self.authenticated:
            return self._refuse("not-authorized", "a %s before authentication" % (stanza.name,))
        sender = parse_jid(stanza.getAttribute("from"))
        recipient = parse_jid(stanza.getAttribute("to"))
        if sender is None or sender.host not in self.authenticated:
            return self._refuse("invalid-from", "a %s from %r, but this stream is "
                                "authenticated for %s only" % (
                                    stanza.name, stanza.getAttribute("from"),
                                    ", ".join(sorted(self.authenticated))))
        if recipient is None or not self.server.hosts(recipient.host):
            return self._refuse("host-unknown", "a %s to %r, which we do not host "
                                "(no relaying)" % (stanza.name, stanza.getAttribute("to")))
        self.server.deliver(stanza, recipient.host, sender.host)


def _decode_authzid(text):
    text = text.strip()
    if not text or text == "=":
        return None
    try:
        return base64.b64decode(text, validate=True).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None
