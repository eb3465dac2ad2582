"""The demo shop's fixed world: categories, what kind of good each is, complements, brands.

This is data, not code: a reader checks what the generator plants by reading these tables.
Everything random (items, prices, users, sessions) is drawn from them in `catalog.py` and
`population.py`.

A leaf category is one of three kinds:

* durable (a treadmill): bought once; afterwards the buyer stops browsing that leaf for a long
  time and turns to its complements (running shoes, a sports watch);
* consumable (coffee beans): bought again on a cycle of `cycle_days`;
* regular: neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["regular", "durable", "consumable"]


@dataclass(frozen=True)
class Leaf:
    top: str
    mid: str
    name: str  # plural, as shown in the category path ("Running shoes")
    noun: str  # singular, as used in item titles ("Running Shoe")
    median_price: float
    kind: Kind = "regular"
    cycle_days: float = 0.0  # repurchase cycle of a consumable
    attributes: str = "c"  # c colour, s size, f shoe size, m material, p pack, g storage, d display
    traffic: float = 1.0  # relative share of interest the leaf draws

    @property
    def path(self) -> str:
        return f"{self.top} > {self.mid} > {self.name}"


D: Kind = "durable"
C: Kind = "consumable"

LEAVES: tuple[Leaf, ...] = (
    Leaf("Sports", "Fitness", "Treadmills", "Treadmill", 750, D, traffic=1.2),
    Leaf("Sports", "Fitness", "Exercise bikes", "Exercise Bike", 450, D),
    Leaf("Sports", "Fitness", "Dumbbells", "Dumbbell Set", 60, attributes="m"),
    Leaf("Sports", "Fitness", "Yoga mats", "Yoga Mat", 30, attributes="cm"),
    Leaf("Sports", "Fitness", "Resistance bands", "Resistance Band", 18, traffic=0.6),
    Leaf("Sports", "Running", "Running shoes", "Running Shoe", 110, attributes="cf", traffic=2.0),
    Leaf("Sports", "Running", "Running shirts", "Running Shirt", 35, attributes="cs"),
    Leaf("Sports", "Running", "Sports watches", "Sports Watch", 250, D, traffic=1.3),
    Leaf("Sports", "Running", "Energy gels", "Energy Gel Pack", 14, C, 14, "p", 0.7),
    Leaf("Sports", "Cycling", "Bicycles", "Bicycle", 900, D, attributes="cs", traffic=1.3),
    Leaf("Sports", "Cycling", "Bike helmets", "Bike Helmet", 70, attributes="cs"),
    Leaf("Sports", "Cycling", "Bike lights", "Bike Light", 30, traffic=0.7),
    Leaf("Sports", "Cycling", "Cycling gloves", "Cycling Glove", 25, attributes="cs", traffic=0.6),
    Leaf("Sports", "Outdoor", "Tents", "Tent", 220, D, attributes="cm"),
    Leaf("Sports", "Outdoor", "Sleeping bags", "Sleeping Bag", 90),
    Leaf("Sports", "Outdoor", "Hiking boots", "Hiking Boot", 140, attributes="cf"),
    Leaf("Sports", "Outdoor", "Backpacks", "Backpack", 80, attributes="cm"),
    Leaf(
        "Electronics", "Phones", "Smartphones", "Smartphone", 600, D, attributes="cg", traffic=2.5
    ),
    Leaf("Electronics", "Phones", "Phone cases", "Phone Case", 20, attributes="cm", traffic=1.5),
    Leaf("Electronics", "Phones", "Chargers", "Charger", 25, traffic=1.2),
    Leaf("Electronics", "Phones", "Screen protectors", "Screen Protector", 12, attributes=""),
    Leaf("Electronics", "Computers", "Laptops", "Laptop", 1000, D, attributes="cg", traffic=2.0),
    Leaf("Electronics", "Computers", "Monitors", "Monitor", 250, D, attributes="d"),
    Leaf("Electronics", "Computers", "Keyboards", "Keyboard", 60),
    Leaf("Electronics", "Computers", "Mice", "Mouse", 35),
    Leaf("Electronics", "Computers", "Laptop bags", "Laptop Bag", 50, attributes="cm"),
    Leaf("Electronics", "Audio", "Headphones", "Headphones", 130, traffic=1.5),
    Leaf("Electronics", "Audio", "Earbuds", "Earbuds", 90, traffic=1.5),
    Leaf("Electronics", "Audio", "Bluetooth speakers", "Bluetooth Speaker", 80),
    Leaf("Electronics", "TV", "Televisions", "Television", 700, D, attributes="d", traffic=1.8),
    Leaf("Electronics", "TV", "Soundbars", "Soundbar", 300, D),
    Leaf("Electronics", "TV", "HDMI cables", "HDMI Cable", 12, attributes="", traffic=0.6),
    Leaf("Electronics", "TV", "TV mounts", "TV Mount", 45, attributes="", traffic=0.6),
    Leaf("Electronics", "Power", "Batteries", "Battery Pack", 10, C, 30, "p"),
    Leaf("Electronics", "Power", "Power banks", "Power Bank", 40),
    Leaf("Home", "Kitchen", "Coffee machines", "Coffee Machine", 350, D, traffic=1.6),
    Leaf("Home", "Kitchen", "Coffee beans", "Coffee Beans", 14, C, 14, "p", 1.5),
    Leaf("Home", "Kitchen", "Milk frothers", "Milk Frother", 60),
    Leaf("Home", "Kitchen", "Descaler", "Descaler", 10, C, 45, "p", 0.5),
    Leaf("Home", "Kitchen", "Kettles", "Kettle", 45, D),
    Leaf("Home", "Kitchen", "Toasters", "Toaster", 50),
    Leaf("Home", "Cleaning", "Vacuum cleaners", "Vacuum Cleaner", 250, D, traffic=1.2),
    Leaf("Home", "Cleaning", "Vacuum bags", "Vacuum Bags", 12, C, 30, "p", 0.6),
    Leaf("Home", "Cleaning", "Robot vacuums", "Robot Vacuum", 400, D),
    Leaf("Home", "Cleaning", "Cleaning sprays", "Cleaning Spray", 6, C, 21, "p", 0.6),
    Leaf("Home", "Furniture", "Sofas", "Sofa", 900, D, attributes="cm", traffic=1.4),
    Leaf("Home", "Furniture", "Cushions", "Cushion", 25, attributes="cm"),
    Leaf("Home", "Furniture", "Desks", "Desk", 300, D, attributes="m"),
    Leaf("Home", "Furniture", "Office chairs", "Office Chair", 250, D, attributes="cm"),
    Leaf("Home", "Furniture", "Desk lamps", "Desk Lamp", 40),
    Leaf("Home", "Bedding", "Mattresses", "Mattress", 500, D, attributes="s"),
    Leaf("Home", "Bedding", "Pillows", "Pillow", 35, attributes="s"),
    Leaf("Home", "Bedding", "Bed sheets", "Bed Sheet Set", 45, attributes="cs"),
    Leaf("Beauty", "Hair", "Hair dryers", "Hair Dryer", 70, D),
    Leaf("Beauty", "Hair", "Shampoo", "Shampoo", 8, C, 30, "p", 1.2),
    Leaf("Beauty", "Hair", "Conditioner", "Conditioner", 9, C, 30, "p"),
    Leaf("Beauty", "Shaving", "Electric shavers", "Electric Shaver", 120, D),
    Leaf("Beauty", "Shaving", "Razor blades", "Razor Blades", 20, C, 28, "p"),
    Leaf("Beauty", "Shaving", "Shaving foam", "Shaving Foam", 5, C, 30, "p", 0.6),
    Leaf("Beauty", "Skin care", "Face cream", "Face Cream", 25, C, 40, "p"),
    Leaf("Beauty", "Skin care", "Sunscreen", "Sunscreen", 15, C, 60, "p"),
    Leaf("Pets", "Dogs", "Dog food", "Dog Food", 40, C, 21, "p", 1.3),
    Leaf("Pets", "Dogs", "Dog beds", "Dog Bed", 60, D, attributes="cs"),
    Leaf("Pets", "Dogs", "Dog leashes", "Dog Leash", 20),
    Leaf("Pets", "Dogs", "Dog toys", "Dog Toy", 12),
    Leaf("Pets", "Cats", "Cat food", "Cat Food", 30, C, 21, "p", 1.2),
    Leaf("Pets", "Cats", "Cat litter", "Cat Litter", 15, C, 14, "p"),
    Leaf("Pets", "Cats", "Cat trees", "Cat Tree", 90, D, attributes="cm"),
    Leaf("Pets", "Cats", "Cat toys", "Cat Toy", 10),
)

# Directed: after looking at (or buying) the key, people move on to the values.
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "Treadmills": ("Running shoes", "Sports watches", "Running shirts"),
    "Exercise bikes": ("Sports watches", "Cycling gloves", "Yoga mats"),
    "Running shoes": ("Running shirts", "Energy gels", "Sports watches"),
    "Sports watches": ("Running shoes", "Running shirts"),
    "Bicycles": ("Bike helmets", "Bike lights", "Cycling gloves"),
    "Tents": ("Sleeping bags", "Backpacks"),
    "Hiking boots": ("Backpacks",),
    "Smartphones": ("Phone cases", "Chargers", "Screen protectors", "Earbuds", "Power banks"),
    "Laptops": ("Laptop bags", "Mice", "Keyboards", "Monitors"),
    "Monitors": ("HDMI cables", "Keyboards"),
    "Televisions": ("Soundbars", "HDMI cables", "TV mounts"),
    "Soundbars": ("HDMI cables",),
    "Coffee machines": ("Coffee beans", "Milk frothers", "Descaler"),
    "Kettles": ("Descaler",),
    "Vacuum cleaners": ("Vacuum bags",),
    "Robot vacuums": ("Cleaning sprays",),
    "Sofas": ("Cushions",),
    "Desks": ("Office chairs", "Desk lamps"),
    "Office chairs": ("Desk lamps",),
    "Mattresses": ("Pillows", "Bed sheets"),
    "Hair dryers": ("Shampoo", "Conditioner"),
    "Shampoo": ("Conditioner",),
    "Electric shavers": ("Shaving foam", "Face cream"),
    "Razor blades": ("Shaving foam",),
    "Dog beds": ("Dog toys", "Dog food"),
    "Dog food": ("Dog toys",),
    "Cat trees": ("Cat toys", "Cat food"),
    "Cat food": ("Cat litter",),
}

# A seasonal need across top-level categories: in its season (the period's last
# `DemoShopConfig.season_days`), a share of new sessions (`season_share`) starts on one of
# these leaves. Off by default (`season_share` 0), so the default shop's log is unchanged.
SEASON_TITLE = "Summer trip"
SEASON_LEAVES: tuple[str, ...] = (
    "Tents", "Backpacks", "Power banks", "Sunscreen", "Bluetooth speakers",
)  # fmt: skip

# Brand -> (the top, mid or leaf categories it sells in, its price level as a factor).
# Several brands span categories (Voltra makes phones, coffee machines and hair dryers).
BRANDS: dict[str, tuple[tuple[str, ...], float]] = {
    "Strideon": (("Running", "Fitness"), 1.1),
    "Peakline": (("Outdoor", "Running", "Cycling"), 1.25),
    "Ironforge": (("Fitness",), 1.0),
    "Velocita": (("Cycling",), 1.3),
    "Trailhaus": (("Outdoor",), 1.0),
    "Pulsefit": (("Fitness", "Running", "Audio"), 0.95),
    "Basecamp": (("Outdoor", "Fitness", "Cycling"), 0.75),
    "Voltra": (
        (
            "Phones",
            "Computers",
            "Audio",
            "TV",
            "Coffee machines",
            "Kettles",
            "Toasters",
            "Milk frothers",
            "Vacuum cleaners",
            "Robot vacuums",
            "Hair dryers",
            "Electric shavers",
        ),
        1.1,
    ),
    "Lumina": (("TV", "Computers", "Desk lamps"), 1.2),
    "Nexa": (("Phones", "Audio", "Power"), 1.3),
    "Qubit": (("Computers", "Phones"), 1.0),
    "Sonavo": (("Audio", "TV"), 1.15),
    "Gripcase": (("Phone cases", "Screen protectors", "Chargers", "Laptop bags"), 0.8),
    "Cableworks": (("Chargers", "HDMI cables", "TV mounts", "Keyboards", "Mice", "Power"), 0.7),
    "Baristo": (("Coffee machines", "Milk frothers", "Descaler", "Coffee beans"), 1.2),
    "Crema Bros": (("Coffee beans",), 1.0),
    "Hausgut": (("Kitchen", "Furniture", "Bedding", "Cleaning"), 0.9),
    "Nordvik": (("Furniture", "Bedding"), 1.15),
    "Dustaway": (("Cleaning",), 0.9),
    "Sleepwell": (("Bedding",), 1.0),
    "Silkara": (("Hair", "Skin care"), 1.05),
    "Edgemaster": (("Shaving",), 1.0),
    "Purelle": (("Hair", "Skin care", "Shaving"), 0.8),
    "Pawly": (("Dogs", "Cats"), 1.0),
    "Whiskerly": (("Cats",), 1.1),
    "Barkside": (("Dogs",), 0.9),
}

ADJECTIVES: tuple[str, ...] = (
    "Pro", "Ultra", "Classic", "Compact", "Smart", "Eco", "Lite", "Max", "Prime", "Urban",
    "Active", "Premium", "Essential", "Sport", "Comfort", "Turbo", "Nova", "Flex", "Aero", "Zen",
)  # fmt: skip

COLOURS: tuple[str, ...] = (
    "black", "white", "grey", "blue", "red", "green", "navy", "silver", "pink", "beige",
)  # fmt: skip

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "size": ("XS", "S", "M", "L", "XL"),
    "shoe_size": ("38", "39", "40", "41", "42", "43", "44", "45", "46"),
    "material": ("wood", "steel", "fabric", "leather", "plastic", "bamboo"),
    "pack": ("single", "2-pack", "3-pack", "6-pack", "family pack"),
    "storage": ("64 GB", "128 GB", "256 GB", "512 GB", "1 TB"),
    "display": ('24"', '27"', '32"', '43"', '55"', '65"'),
}
ATTRIBUTE_CODES: dict[str, str] = {
    "c": "colour",
    "s": "size",
    "f": "shoe_size",
    "m": "material",
    "p": "pack",
    "g": "storage",
    "d": "display",
}
