"""A SOAP 1.1 person-lookup server serving a synthetic municipality's persons.

The request envelope is parsed with lxml and checked against the XSD; answers follow the XSD.
Unknown persons get a ``soap:Client`` fault (PERSON_NOT_FOUND), a wrong service agreement a
``soap:Client`` fault (ACCESS_DENIED), injected faults a ``soap:Server`` fault. Latency, 503s,
timeouts and outages come from ``connectors.simulation.fault_middleware``; ``malformed_rate``
serves some persons with a response that breaks the XSD (always the same persons for a seed).

The register is live: tests and ``glasplade simulate`` change persons (``move``, ``rename``,
``set_relation``) and the next lookup answers with the new state.
"""

from __future__ import annotations

import socket
import threading
from datetime import date

from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree

from connectors.cpr import soap
from connectors.simulation import (
    FaultConfig,
    Faults,
    HttpSimulator,
    ServerThread,
    fault_middleware,
)
from hub.domain.events import Address
from hub.synthetic.model import Municipality, Person, Relation

DEFAULT_AGREEMENT = "6c5c4a1e-0000-4000-8000-00000000a001"
_E = f"{{{soap.SOAP_ENV}}}"
_N = f"{{{soap.NS}}}"


class CprRegister:
    """The persons and relations the simulated register knows: a live view of the municipality
    (``glasplade simulate`` evolves it: moves, births, marriages), safe to change while serving."""

    def __init__(self, municipality: Municipality):
        self._lock = threading.Lock()
        self.municipality = municipality
        self.code = municipality.code
        self._sizes: tuple[int, int] | None = None
        self._persons: dict[str, Person] = {}
        self._relations: dict[str, list[Relation]] = {}

    def _index(self) -> None:
        m = self.municipality
        sizes = (len(m.persons), len(m.relations))
        if sizes != self._sizes:
            self._persons = {p.cpr: p for p in m.persons}
            self._relations = {}
            for r in m.relations:
                self._relations.setdefault(r.person, []).append(r)
            self._sizes = sizes

    def get(self, pnr: str) -> tuple[Person, list[Relation]] | None:
        with self._lock:
            self._index()
            p = self._persons.get(pnr)
            if p is None:
                return None
            return p, list(self._relations.get(pnr, ()))

    def _person(self, pnr: str) -> Person:
        self._index()
        return self._persons[pnr]

    def add(self, person: Person) -> None:
        with self._lock:
            self.municipality.persons.append(person)

    def move(self, pnr: str, address: Address) -> None:
        with self._lock:
            self._person(pnr).address = address

    def rename(self, pnr: str, first_name: str, last_name: str) -> None:
        with self._lock:
            p = self._person(pnr)
            p.first_name, p.last_name = first_name, last_name

    def protect(self, pnr: str, protected: bool = True) -> None:
        with self._lock:
            self._person(pnr).protected_address = protected

    def set_relation(self, relation: Relation, present: bool = True) -> None:
        with self._lock:
            key = (relation.person, relation.related_person, relation.relation)
            m = self.municipality
            m.relations[:] = [r for r in m.relations
                              if (r.person, r.related_person, r.relation) != key]
            if present:
                m.relations.append(relation)
            self._sizes = None


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _N + name)
    if text is not None:
        el.text = text
    return el


def _envelope() -> tuple[etree._Element, etree._Element]:
    env = etree.Element(_E + "Envelope", nsmap={"soap": soap.SOAP_ENV, "cpr": soap.NS})
    return env, etree.SubElement(env, _E + "Body")


def fault_response(faultcode: str, kode: str, tekst: str, status: int = 500) -> Response:
    env, body = _envelope()
    fault = etree.SubElement(body, _E + "Fault")
    etree.SubElement(fault, "faultcode").text = f"soap:{faultcode}"
    etree.SubElement(fault, "faultstring").text = tekst
    detail = etree.SubElement(fault, "detail")
    f = etree.SubElement(detail, _N + "PersonLookupFault")
    _sub(f, "kode", kode)
    _sub(f, "tekst", tekst)
    return Response(etree.tostring(env, xml_declaration=True, encoding="utf-8"),
                    status_code=status, media_type="text/xml; charset=utf-8")


def person_response(person: Person, relations: list[Relation], municipality_code: str,
                    malformed: bool = False) -> bytes:
    env, body = _envelope()
    resp = etree.SubElement(body, _N + "PersonLookupResponse")
    pd = _sub(resp, "persondata")
    navn = _sub(pd, "navn")
    _sub(navn, "fornavn", person.first_name)
    if not malformed:  # a malformed record lacks its surname (required by the XSD)
        _sub(navn, "efternavn", person.last_name)
    _sub(navn, "adresseringsnavn", f"{person.last_name},{person.first_name}")
    _sub(pd, "koen", person.sex)
    _sub(pd, "foedselsdato", person.birth_date.isoformat())
    a = person.address
    if a is not None:
        aktuel = _sub(_sub(pd, "adresse"), "aktuelAdresse")
        _sub(aktuel, "vejadresseringsnavn", a.street)
        _sub(aktuel, "husnummer", a.house_number)
        if a.floor:
            _sub(aktuel, "etage", a.floor)
        if a.door:
            _sub(aktuel, "sidedoer", a.door)
        _sub(aktuel, "postnummer", a.postcode)
        _sub(aktuel, "postdistrikt", a.city)
        _sub(aktuel, "kommunekode", a.municipality_code or municipality_code)
        if a.address_id:
            _sub(aktuel, "adresseId", a.address_id)
    civil = _sub(pd, "civilstand")
    _sub(civil, "civilstandKode", "D" if person.died_on else person.civil_status)
    protection = _sub(pd, "adressebeskyttelse")
    _sub(protection, "beskyttet", "true" if person.protected_address else "false")
    if person.died_on:
        _sub(pd, "doedsdato", person.died_on.isoformat())
    rel = _sub(resp, "relationer")
    for element in soap.RELATION_ELEMENTS:  # the XSD's order
        for r in sorted((r for r in relations
                         if soap.ELEMENT_OF_RELATION.get(r.relation) == element),
                        key=lambda r: r.related_person):
            el = _sub(rel, element)
            _sub(el, "PNR", r.related_person)
            if isinstance(r.since, date):
                _sub(el, "fra", r.since.isoformat())
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def create_app(register: CprRegister, faults: Faults,
               service_agreement: str = DEFAULT_AGREEMENT) -> FastAPI:
    app = FastAPI(title="CPR person lookup (simulator)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    fault_middleware(app, faults)
    schema = etree.XMLSchema(etree.parse(str(soap.XSD_FILE)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)

    @app.get(soap.SERVICE_PATH)
    async def wsdl(request: Request) -> Response:
        text = soap.WSDL_FILE.read_text(encoding="utf-8").replace(
            "https://localhost" + soap.SERVICE_PATH, str(request.url.remove_query_params("wsdl")))
        return Response(text, media_type="text/xml; charset=utf-8")

    @app.get(soap.SERVICE_PATH.rsplit("/", 1)[0] + "/{name}.xsd")
    async def xsd(name: str) -> Response:
        return Response(soap.XSD_FILE.read_bytes(), media_type="text/xml; charset=utf-8")

    @app.post(soap.SERVICE_PATH)
    async def lookup(request: Request) -> Response:
        try:
            env = etree.fromstring(await request.body(), parser)
        except etree.XMLSyntaxError as exc:
            return fault_response("Client", soap.INVALID_REQUEST, f"not XML: {exc}")
        req = env.find(f"{_E}Body/{_N}PersonLookupRequest")
        if req is None:
            return fault_response("Client", soap.INVALID_REQUEST,
                                  "expected soap:Body/PersonLookupRequest")
        if not schema.validate(req):
            return fault_response("Client", soap.INVALID_REQUEST,
                                  f"request does not match the XSD: {schema.error_log.last_error}")
        agreement = req.findtext(f"{_N}InvocationContext/{_N}ServiceAgreementUUID")
        if agreement != service_agreement:
            return fault_response("Client", soap.ACCESS_DENIED,
                                  "no service agreement for this user system")
        if faults.soap_fault():
            return fault_response("Server", soap.INTERNAL_ERROR, "simulated internal error")
        pnr = req.findtext(f"{_N}PNR") or ""
        found = register.get(pnr)
        if found is None:
            return fault_response("Client", soap.PERSON_NOT_FOUND, "PNR findes ikke i CPR")
        person, relations = found
        body = person_response(person, relations, register.code, faults.malformed(pnr))
        return Response(body, media_type="text/xml; charset=utf-8")

    return app


class CprSimulator(HttpSimulator):
    def __init__(self, register: CprRegister, faults: Faults,
                 service_agreement: str = DEFAULT_AGREEMENT):
        self.register = register
        super().__init__("cpr", create_app(register, faults, service_agreement), faults,
                         lambda url: {"CPR_BASE_URL": url,
                                      "CPR_SERVICE_AGREEMENT_UUID": service_agreement})

    def start(self, port: int = 0) -> str:
        url = super().start(port)
        _nodelay(self.server)
        return url

    def restart(self) -> str:
        url = super().restart()
        _nodelay(self.server)
        return url


def _nodelay(server: ServerThread) -> None:
    """Workaround: ``ServerThread`` hands uvicorn a pre-bound socket without TCP_NODELAY, so every
    response waits ~40 ms for the client's delayed ACK (Nagle). Accepted sockets inherit the
    option from the listening socket on Linux. Remove once connectors/simulation.py sets it."""
    uv = getattr(server, "_server", None)
    for s in getattr(uv, "servers", None) or []:
        for sock in s.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def simulator(municipality: Municipality, faults: FaultConfig | None = None) -> CprSimulator:
    """The registry's simulator factory."""
    return CprSimulator(CprRegister(municipality), Faults(faults or FaultConfig()))
