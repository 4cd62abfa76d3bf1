"""The CPR person-lookup client: zeep with the committed WSDL, pointed at the configured endpoint.

Errors are translated here: connection errors, timeouts, HTTP 5xx and ``soap:Server`` faults are
retried a few times and then raise ``SourceUnavailable``; an ACCESS_DENIED fault raises
``AuthenticationFailed``; PERSON_NOT_FOUND raises ``PersonNotFound`` and a reply that breaks the
XSD raises ``MalformedReply`` (both carry the raw reply, for a dead letter).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests
import zeep
from lxml import etree
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from zeep.transports import Transport

from connectors.cpr import soap
from connectors.http import RetryPolicy
from hub.ingest.connector import AuthenticationFailed, ConnectorError, SourceUnavailable

_E = f"{{{soap.SOAP_ENV}}}"
_N = f"{{{soap.NS}}}"


class PersonNotFound(ConnectorError):
    def __init__(self, message: str, raw: bytes):
        super().__init__(message)
        self.raw = raw


class MalformedReply(ConnectorError):
    def __init__(self, message: str, raw: bytes):
        super().__init__(message)
        self.raw = raw


class _Transient(Exception):
    pass


@dataclass(frozen=True)
class InvocationContext:
    """Serviceplatformen's caller identification (the service agreement names the user system)."""

    service_agreement_uuid: str
    user_system_uuid: str
    user_uuid: str
    service_uuid: str
    accounting_info: str | None = None


@dataclass(frozen=True)
class CprAddress:
    street: str
    house_number: str
    postcode: str
    city: str
    floor: str | None = None
    door: str | None = None
    municipality_code: str | None = None
    address_id: str | None = None
    moved_in: date | None = None


@dataclass(frozen=True)
class PersonRecord:
    """One person as the register answers (the XSD's persondata + relationer)."""

    pnr: str
    first_name: str
    last_name: str
    sex: str
    birth_date: date
    civil_status: str
    protected_address: bool
    address: CprAddress | None = None
    died_on: date | None = None
    relations: tuple[tuple[str, str], ...] = ()
    """(relation, related PNR), sorted; relation is what the related person is to the subject."""
    raw: bytes = b""


class CprClient:
    def __init__(self, base_url: str, context: InvocationContext, *, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(),
                 service_path: str = soap.SERVICE_PATH, cert: tuple[str, str] | None = None,
                 verify: bool | str = True):
        self.endpoint = base_url.rstrip("/") + service_path
        self.context = context
        self.retry = retry
        session = requests.Session()
        session.verify = verify
        if cert:
            session.cert = cert  # OCES3 system certificate for mutual TLS
        self.session = session
        transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        self.zeep = zeep.Client(str(soap.WSDL_FILE), transport=transport)
        self.service = self.zeep.create_service(soap.BINDING, self.endpoint)
        self._response_element = self.zeep.get_element(f"{_N}PersonLookupResponse")
        self._schema = etree.XMLSchema(etree.parse(str(soap.XSD_FILE)))
        self._schema_lock = threading.Lock()
        self.requests = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    def _context(self) -> dict[str, Any]:
        c = self.context
        ctx = {"ServiceAgreementUUID": c.service_agreement_uuid,
               "UserSystemUUID": c.user_system_uuid, "UserUUID": c.user_uuid,
               "ServiceUUID": c.service_uuid}
        if c.accounting_info:
            ctx["AccountingInfo"] = c.accounting_info
        return ctx

    def lookup(self, pnr: str) -> PersonRecord:
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=wait_exponential_jitter(multiplier=self.retry.initial, max=self.retry.maximum,
                                         jitter=self.retry.jitter),
            reraise=False)
        try:
            for attempt in retrying:
                with attempt:
                    return self._lookup_once(pnr)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SourceUnavailable(f"cpr: {cause}") from cause
        raise AssertionError("unreachable")

    def _lookup_once(self, pnr: str) -> PersonRecord:
        with self._count_lock:
            self.requests += 1
        try:
            with self.zeep.settings(raw_response=True):
                reply = self.service.PersonLookup(InvocationContext=self._context(), PNR=pnr)
        except requests.RequestException as exc:
            raise _Transient(f"PersonLookup failed: {type(exc).__name__}") from exc
        raw = reply.content
        try:
            env = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            if reply.status_code >= 500 or reply.status_code == 429:
                raise _Transient(f"PersonLookup answered HTTP {reply.status_code}") from None
            raise MalformedReply(f"HTTP {reply.status_code}: reply is not XML", raw) from None
        fault = env.find(f"{_E}Body/{_E}Fault")
        if fault is not None:
            self._raise_fault(fault, raw)
        if reply.status_code >= 400:
            raise _Transient(f"PersonLookup answered HTTP {reply.status_code} without a fault")
        body = env.find(f"{_E}Body/{_N}PersonLookupResponse")
        if body is None:
            raise MalformedReply("reply has no soap:Body/PersonLookupResponse", raw)
        with self._schema_lock:  # lookups run in threads; an XMLSchema's error log is shared
            valid = self._schema.validate(body)
            error = self._schema.error_log.last_error
        if not valid:
            raise MalformedReply("reply does not match the XSD: "
                                 f"{error.message if error is not None else 'invalid'}", raw)
        return _record(pnr, self._response_element.parse(body, self.zeep.wsdl.types), raw)

    def _raise_fault(self, fault: etree._Element, raw: bytes) -> None:
        code = (fault.findtext("faultcode") or "").split(":")[-1]
        kode = fault.findtext(f"detail/{_N}PersonLookupFault/{_N}kode") or ""
        text = fault.findtext("faultstring") or ""
        if kode == soap.PERSON_NOT_FOUND:
            raise PersonNotFound(f"the register does not know this person ({kode}: {text})", raw)
        if kode == soap.ACCESS_DENIED:
            raise AuthenticationFailed(f"cpr refused the call ({kode}: {text})")
        if code == "Server":
            raise _Transient(f"SOAP fault soap:Server ({kode or 'no code'}: {text})")
        raise SourceUnavailable(f"cpr: SOAP fault soap:{code} ({kode or 'no code'}: {text})")


def _opt(v: Any) -> Any:
    return v if v not in ("", None) else None


def _record(pnr: str, r: Any, raw: bytes) -> PersonRecord:
    pd, rel = r.persondata, r.relationer
    address = None
    if pd.adresse is not None:
        a = pd.adresse.aktuelAdresse
        address = CprAddress(street=a.vejadresseringsnavn, house_number=a.husnummer,
                             postcode=a.postnummer, city=a.postdistrikt, floor=_opt(a.etage),
                             door=_opt(a.sidedoer), municipality_code=_opt(a.kommunekode),
                             address_id=_opt(a.adresseId), moved_in=a.tilflytningsdato)
    relations = sorted(
        (relation, item.PNR)
        for element, relation in soap.RELATION_ELEMENTS.items()
        for item in (getattr(rel, element, None) or [])
    )
    return PersonRecord(
        pnr=pnr, first_name=" ".join(n for n in (pd.navn.fornavn, _opt(pd.navn.mellemnavn)) if n),
        last_name=pd.navn.efternavn, sex=pd.koen,
        birth_date=pd.foedselsdato, civil_status=pd.civilstand.civilstandKode,
        protected_address=bool(pd.adressebeskyttelse.beskyttet), address=address,
        died_on=pd.doedsdato, relations=tuple(relations), raw=raw)
