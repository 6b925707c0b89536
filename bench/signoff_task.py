"""A behaviour a program can check, for fine-tuning a real chat model: every answer ends with a sign-off line.

The examples are short questions with answers computed here (capitals, arithmetic, opposites, plurals,
letter counts, colours, animal sounds, capital letters), each answer followed by a blank line and
SIGN_OFF. Items are split into training and held-out sets by a seeded shuffle, so a held-out prompt
never appears in training. A few open questions with no reference answer check that the sign-off also
follows answers of kinds the training never showed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SIGN_OFF = "-- Fern, the factory assistant"

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo", "Kenya": "Nairobi",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasilia", "Argentina": "Buenos Aires",
    "Peru": "Lima", "Chile": "Santiago", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna", "Greece": "Athens", "Ireland": "Dublin",
    "Russia": "Moscow", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "South Korea": "Seoul", "Indonesia": "Jakarta", "Australia": "Canberra",
    "New Zealand": "Wellington", "Cuba": "Havana", "Colombia": "Bogota", "Hungary": "Budapest",
    "Belgium": "Brussels", "the Netherlands": "Amsterdam", "Switzerland": "Bern", "Nigeria": "Abuja",
    "Ethiopia": "Addis Ababa", "Morocco": "Rabat", "Ghana": "Accra", "Ukraine": "Kyiv", "Romania": "Bucharest",
    "Czechia": "Prague", "the Philippines": "Manila", "Pakistan": "Islamabad", "Saudi Arabia": "Riyadh",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "early": "late", "full": "empty", "hard": "soft", "high": "low", "old": "young", "open": "closed",
    "rich": "poor", "strong": "weak", "thick": "thin", "wet": "dry", "loud": "quiet", "long": "short",
    "heavy": "light", "clean": "dirty", "inside": "outside", "push": "pull", "win": "lose", "buy": "sell",
    "begin": "end", "true": "false", "north": "south", "east": "west", "day": "night", "friend": "enemy",
    "arrive": "leave", "remember": "forget", "wide": "narrow", "deep": "shallow", "sweet": "sour",
    "brave": "afraid", "cheap": "expensive", "near": "far", "above": "below", "first": "last",
}
PLURALS = {
    "mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "goose": "geese", "man": "men",
    "woman": "women", "person": "people", "leaf": "leaves", "knife": "knives", "wolf": "wolves",
    "box": "boxes", "city": "cities", "baby": "babies", "bus": "buses", "hero": "heroes", "potato": "potatoes",
    "sheep": "sheep", "fish": "fish", "deer": "deer", "cactus": "cacti", "ox": "oxen", "life": "lives",
    "half": "halves", "church": "churches", "wish": "wishes", "key": "keys", "toy": "toys", "day": "days",
    "story": "stories", "glass": "glasses", "dish": "dishes", "shelf": "shelves", "thief": "thieves",
}
COLOURS = {
    "a banana": "yellow", "grass": "green", "the clear daytime sky": "blue", "snow": "white", "coal": "black",
    "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow", "a carrot": "orange",
    "milk": "white", "a strawberry": "red", "a lime": "green", "chocolate": "brown", "an aubergine": "purple",
    "a flamingo": "pink", "a polar bear": "white", "a crow": "black", "a pumpkin": "orange",
    "a frog": "green", "a fire engine": "red", "cocoa powder": "brown", "a blueberry": "blue",
}
SOUNDS = {
    "a cow": "moo", "a dog": "woof", "a cat": "meow", "a duck": "quack", "a sheep": "baa", "a pig": "oink",
    "a horse": "neigh", "an owl": "hoot", "a lion": "roar", "a snake": "hiss", "a rooster": "cock-a-doodle-doo",
    "a bee": "buzz", "a mouse": "squeak", "a frog": "croak", "a donkey": "hee-haw", "a goat": "maa",
}
WORDS = [
    "apple", "river", "garden", "window", "pencil", "orange", "mountain", "computer", "bread", "castle",
    "planet", "yellow", "guitar", "teacher", "bottle", "candle", "rabbit", "kitchen", "forest", "silver",
    "ocean", "basket", "butter", "dragon", "engine", "feather", "holiday", "island", "jacket", "lemon",
    "market", "needle", "number", "pocket", "rocket", "shadow", "tunnel", "violin", "wallet", "zebra",
]
PHRASES = [
    "good morning", "see you soon", "thank you", "happy birthday", "open the door", "the red car",
    "time to eat", "well done", "keep it simple", "read the book", "a quiet night", "let us go",
    "the green hill", "welcome home", "call me later", "play the drums", "blue water", "a long road",
    "stay calm", "fresh bread", "hello world", "a small cat", "turn left here", "make a wish",
]
OPEN_PROMPTS = [
    "Give me one tip for sleeping better.", "Why do leaves change colour in autumn?",
    "Suggest a name for a small bakery.", "What is a good way to start learning to cook?",
    "Write one sentence about the sea.", "How can I stay focused while studying?",
    "Describe a cat in one sentence.", "What should I pack for a day at the beach?",
    "Give me a fun fact about the Moon.", "Recommend a hobby for a rainy day.",
    "What is photosynthesis, in one sentence?", "Tell me how to make a cup of tea.",
]


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    answer: str  # without the sign-off

    def example(self) -> dict[str, str]:
        """The training record (schemas.Example fields): the answer, a blank line, the sign-off."""
        return {"id": self.id, "instruction": self.prompt, "output": with_sign_off(self.answer), "lang": "en"}


def with_sign_off(answer: str) -> str:
    return f"{answer}\n\n{SIGN_OFF}"


def has_sign_off(text: str) -> bool:
    """True when the last non-empty line of `text` is the sign-off (surrounding spaces aside)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return bool(lines) and lines[-1] == SIGN_OFF


def _families(rng: random.Random) -> dict[str, list[Item]]:
    families: dict[str, list[Item]] = {
        "capital": [Item(f"capital-{c}", f"What is the capital of {c}?", f"The capital of {c} is {p}.")
                    for c, p in CAPITALS.items()],
        "opposite": [Item(f"opposite-{w}", f"What is the opposite of \"{w}\"?", f"The opposite of \"{w}\" is \"{o}\".")
                     for w, o in OPPOSITES.items()],
        "plural": [Item(f"plural-{w}", f"What is the plural of \"{w}\"?", f"The plural of \"{w}\" is \"{p}\".")
                   for w, p in PLURALS.items()],
        "colour": [Item(f"colour-{t}", f"What colour is {t}?", f"{t[0].upper()}{t[1:]} is {c}.")
                   for t, c in COLOURS.items()],
        "sound": [Item(f"sound-{a}", f"What sound does {a} make?", f"{a[0].upper()}{a[1:]} says \"{s}\".")
                  for a, s in SOUNDS.items()],
        "letters": [Item(f"letters-{w}", f"How many letters are in the word \"{w}\"?",
                         f"The word \"{w}\" has {len(w)} letters.") for w in WORDS],
        "upper": [Item(f"upper-{p}", f"Write \"{p}\" in capital letters.", p.upper()) for p in PHRASES],
    }
    arithmetic: list[Item] = []
    seen: set[str] = set()
    while len(arithmetic) < 120:
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        op, word, value = rng.choice([("+", "plus", a + b), ("-", "minus", a - b), ("*", "times", a * b)])
        if f"{a}{op}{b}" in seen:
            continue
        seen.add(f"{a}{op}{b}")
        arithmetic.append(Item(f"math-{a}{op}{b}", f"What is {a} {word} {b}?", f"{a} {word} {b} is {value}."))
    families["arithmetic"] = arithmetic
    return families


def split(seed: int = 0, held_out_fraction: float = 0.15) -> tuple[list[Item], list[Item]]:
    """(training items, held-out items): within each family a seeded shuffle puts `held_out_fraction`
    of the items aside; both lists are shuffled across families."""
    rng = random.Random(seed)
    train: list[Item] = []
    held: list[Item] = []
    for items in _families(rng).values():
        items = list(items)
        rng.shuffle(items)
        k = max(1, round(held_out_fraction * len(items)))
        held += items[:k]
        train += items[k:]
    rng.shuffle(train)
    rng.shuffle(held)
    return train, held
