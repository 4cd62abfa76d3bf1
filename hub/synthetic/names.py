"""Small lists of Danish first and last names and fictional Glasby streets.

Names are combined at random, so no generated person is a real one; CPR numbers come from
``hub.domain.cpr.synthetic_cpr`` and fail modulus 11. Addresses are fictional (postcodes
9990-9999 "Glasby", which no real Danish town uses).
"""

from __future__ import annotations

from uuid import UUID, uuid5

from hub.domain.events import Address

FEMALE = (
    "Anne", "Kirsten", "Mette", "Hanne", "Anna", "Helle", "Susanne", "Lene", "Maria", "Marianne",
    "Lone", "Camilla", "Pia", "Louise", "Charlotte", "Bente", "Tina", "Gitte", "Inge", "Karen",
    "Emma", "Ida", "Sofie", "Freja", "Clara", "Laura", "Alma", "Ella", "Agnes", "Nora",
)
MALE = (
    "Peter", "Michael", "Lars", "Jens", "Thomas", "Henrik", "Søren", "Christian", "Martin", "Jan",
    "Morten", "Jesper", "Anders", "Niels", "Mads", "Rasmus", "Per", "Kim", "Hans", "Poul",
    "William", "Noah", "Oscar", "Lucas", "Carl", "Victor", "Malthe", "Alfred", "Emil", "Aksel",
)
LAST = (
    "Nielsen", "Jensen", "Hansen", "Andersen", "Pedersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen",
    "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Knudsen", "Jakobsen",
    "Mikkelsen",
    "Olesen", "Frederiksen", "Laursen", "Henriksen", "Lund", "Holm", "Schmidt", "Eriksen",
    "Kristiansen", "Clausen", "Simonsen", "Svendsen", "Andreasen", "Iversen", "Østergaard",
    "Jeppesen", "Vestergaard", "Nissen", "Lauridsen", "Kjær", "Jepsen", "Mogensen", "Carlsen",
    "Dahl", "Bach", "Krogh", "Friis", "Ahmed", "Ali", "Hussein", "Yilmaz", "Nowak",
)
#: How another fagsystem may spell the same last name (transliteration or a common mix-up).
ALTERNATE = {
    "Sørensen": "Sorensen", "Jørgensen": "Joergensen", "Møller": "Moeller",
    "Østergaard": "Oestergaard", "Kjær": "Kjaer", "Christensen": "Kristensen",
    "Kristensen": "Christensen", "Pedersen": "Petersen", "Petersen": "Pedersen",
    "Christiansen": "Kristiansen", "Jakobsen": "Jacobsen", "Carlsen": "Karlsen",
    "Nielsen": "Nilsen", "Jepsen": "Jeppesen", "Hussein": "Hussain", "Ahmed": "Ahmad",
}

_STREET_BASES = (
    "Glasvej", "Rudevej", "Spejlgade", "Krystalvej", "Prismevej", "Linsevej", "Vinduesgade",
    "Glarmestervej", "Flaskevej", "Pustervej", "Smelteovnen", "Kvartsvej", "Sandvej", "Ovnvej",
    "Karaffelvej", "Glasbakken", "Lysningen", "Facetvej", "Perlevej", "Mosaikvej", "Buevej",
    "Kupplen", "Glasstræde", "Klarvej", "Skårvej", "Slibervej", "Blyvej", "Farvevej",
    "Kolbevej", "Pokalvej", "Rudegade", "Glaspladsen", "Spejlbakken", "Lyngglasvej", "Ravvej",
    "Gennemsigten", "Solglasvej", "Bølgeglasvej", "Istapvej", "Dugvej",
)
_STREET_FORMS = ("{}", "Store {}", "Lille {}", "Nørre {}", "Søndre {}", "Øster {}", "Vester {}",
                 "Gl. {}")
#: Dwellings per street: the first 300 are detached houses, the rest flats in blocks.
DWELLINGS_PER_STREET = 1500
_DETACHED = 300
_FLATS_PER_BLOCK = 12
_DOORS = ("tv", "mf", "th")
_ADDRESS_NS = UUID("3b0f9a52-7c1e-4f7e-9a0c-6a5d2f0e9c11")


def street_name(index: int) -> str:
    base = _STREET_BASES[index % len(_STREET_BASES)]
    form = _STREET_FORMS[(index // len(_STREET_BASES)) % len(_STREET_FORMS)]
    name = form.format(base)
    cycle = index // (len(_STREET_BASES) * len(_STREET_FORMS))
    return f"{name} {cycle + 1}. afsnit" if cycle else name


def dwelling_address(index: int, municipality_code: str) -> Address:
    """The fictional address of dwelling number ``index``: same index, same address and id."""
    street_index, j = divmod(index, DWELLINGS_PER_STREET)
    street = street_name(street_index)
    floor = door = None
    if j < _DETACHED:
        number = str(2 * j + 1)
    else:
        block, k = divmod(j - _DETACHED, _FLATS_PER_BLOCK)
        number = str(2 * block + 2)
        level = k // len(_DOORS)
        floor = "st" if level == 0 else str(level)
        door = _DOORS[k % len(_DOORS)]
    postcode = str(9990 + street_index % 10)
    address_id = str(uuid5(_ADDRESS_NS, f"{municipality_code}:{street}:{number}:{floor}:{door}"))
    return Address(street=street, house_number=number, postcode=postcode, city="Glasby",
                   floor=floor, door=door, municipality_code=municipality_code,
                   address_id=address_id)
