"""Names shared by the CPR client and simulator: namespaces, the WSDL files, the service path."""

from __future__ import annotations

from pathlib import Path

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_FILE = WSDL_DIR / "PersonBaseDataExtended.wsdl"
XSD_FILE = WSDL_DIR / "PersonBaseDataExtended.xsd"

NS = "urn:glasplade:cpr:personbasedataextended:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
BINDING = f"{{{NS}}}PersonBaseDataExtendedBinding"
SERVICE_PATH = "/service/CPR/PersonBaseDataExtended/5"

#: Fault detail codes (PersonLookupFault/kode).
PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
ACCESS_DENIED = "ACCESS_DENIED"
INVALID_REQUEST = "INVALID_REQUEST"
INTERNAL_ERROR = "INTERNAL_ERROR"

#: CPR relation element -> the canonical relation (what the related person is to the subject).
RELATION_ELEMENTS = {
    "aegtefaelle": "spouse",
    "samlever": "co_resident",
    "barn": "child",
    "foraelder": "parent",
    "foraeldremyndighedsindehaver": "custody_holder",
}
ELEMENT_OF_RELATION = {v: k for k, v in RELATION_ELEMENTS.items()}
