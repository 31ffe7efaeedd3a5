#!/usr/bin/env python3
"""Generate the deterministic provaudit test fixtures under ``fixtures/``.

Run ``python scripts/make_fixtures.py``.  Everything comes from an embedded
vocabulary and a small template grammar sampled with Zipf-like frequencies,
seeded with ``SEED``; two runs produce byte-identical files.  See
``fixtures/README.md`` for the layout and the planted kinds.
"""
from __future__ import annotations

import gzip
import json
import math
import random
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

T = TypeVar("T")
SEED = 20261129
OUT = Path(__file__).resolve().parent.parent / "fixtures"
N_REFERENCE = 3000
PER_KIND = 80
MAX_COMMON = 0.25  # reference posts keep at most this fraction of frequent (boilerplate) 3-grams
MAX_CHANCE = 0.35  # items that appear nowhere are redrawn if some record contains more of them by chance
SHARDS = ("shards/train-00.jsonl", "shards/train-01.jsonl.gz", "shards/train-02.parquet")
SHARD_SIZES = (3300, 2350, 350)  # records per shard, planted included
EDIT_RATES = {"edit05": 0.05, "edit10": 0.10, "edit20": 0.20}
SHARD_KINDS = ("verbatim", "case", "whitespace", "punctuation", "unicode", *EDIT_RATES,
               "truncate70", "embedded", "concatenated", "hard_negative")

# --- vocabulary: "<topic> <pos>: words"; verbs "base[/past[/ing]]", nouns "sing[/plural]" ---------
FUNCTION_WORDS = """the a an this that these those my your his her its our their some any no every each all both
either neither few many much more most other another such what which whose i me you he him she it we us they them
myself yourself itself ourselves themselves someone somebody anyone everyone everybody nobody nothing something
anything everything in on at to for with from by about of into onto over under after before during without within
between through around near behind above below across against along among toward until since like than and or but
so because if when while although though unless whether then also yet nor is am are was were be been being have
has had do does did will would can could should may might must not never always often sometimes usually already
still just only even really very quite pretty too almost enough maybe perhaps probably definitely actually
literally basically honestly seriously totally finally again once here there now today tonight tomorrow yesterday
soon later ago away back up down out off don't can't won't didn't isn't wasn't aren't doesn't couldn't wouldn't
shouldn't haven't i'm i've i'll i'd it's that's there's you're we're they're let's what's he's she's oh yeah yes
okay ok well hey wow lol haha omg ugh hmm please thanks sorry how why where who gonna wanna gotta kinda sorta one
two three four five six seven eight nine ten first second last next""".split()

VOCAB = """
general n: time day thing friend life/lives world home house café room car money idea problem question answer story
general n: reason way place city town street road park store line side end point moment minute hour month week year
general n: night weekend feeling mood energy mistake lesson memory dream goal chance luck plan surprise party gift
general n: picture photo video news post comment group neighbor stranger crowd mess deal price bill ticket bag box
general n: key door window table chair floor wall light noise voice word country state bridge corner view color
general n: shape size sound smell taste list number couch bed kitchen garden yard balcony sidewalk elevator parking
general n: traffic bus train bike truck jacket shirt shoe hat umbrella wallet receipt package delivery mailbox cup
general n: glass bottle plate spoon knife candle blanket pillow mirror clock calendar birthday holiday anniversary
general n: wedding festival concert playlist podcast headline rumor opinion argument secret promise excuse habit
general n: routine schedule deadline emergency accident adventure shortcut detour neighborhood village library
general n: museum theater stadium bakery pharmacy gym ocean river lake mountain forest beach island desert field
general n: hill valley sky cloud star moon sunset sunrise
general v: love hate need want like enjoy miss forget/forgot/forgetting remember try finish start open close watch
general v: check/checked/checking call text wait walk talk laugh cry smile yell/yelled/yelling share post order
general v: find/found lose/lost make/made take/took give/gave get/got/getting buy/bought sell/sold bring/brought
general v: keep/kept leave/left meet/met see/saw hear/heard say/said tell/told think/thought know/knew feel/felt
general v: write/wrote read/read drive/drove ride/rode eat/ate drink/drank sleep/slept wake/woke run/ran/running
general v: swim/swam/swimming sit/sat/sitting stop/stopped/stopping plan/planned/planning cook clean fix move
general v: carry/carried/carrying borrow return visit explore discover notice ignore celebrate
general v: complain/complained/complaining explain imagine recommend survive organize decorate borrow/borrowed
general v: share/shared wash/washed paint/painted build/built draw/drew/drawing answer/answered count/counted
general v: follow/followed wonder/wondered guess/guessed hide/hid/hiding measure/measured
general a: good great bad new old big small long short little hot naïve cold warm cool nice weird funny strange
general a: crazy amazing awesome terrible horrible perfect beautiful ugly loud quiet busy lazy tired happy sad angry
general a: excited nervous proud lucky chill random fancy cheap expensive fresh early late quick slow huge tiny soft
general a: hard easy simple messy clean wild gentle brave silly cozy dusty shiny sticky fluffy clichéd curious
general a: grateful honest awkward loyal rough smooth bright dark heavy light narrow wide sharp empty full rich poor
general a: rare normal serious famous useless useful wet dry broken fake real giant modern ancient gorgeous annoying
general a: chaotic peaceful reliable suspicious mysterious magical ridiculous elegant
tech n: phone laptop app update battery screen charger keyboard password wifi router server bug feature website
tech n: browser tab cloud backup account login notification algorithm robot drone gadget headphones speaker tablet
tech n: camera printer cable database code script startup software hardware chip pixel firmware file folder inbox
tech n: spam filter profile settings subscription device sensor
tech v: download install reboot upgrade debug/debugged/debugging code scroll stream click tap/tapped/tapping charge
tech v: unplug/unplugged/unplugging sync type swipe/swiped/swiping delete backup/backed/backing upload/uploaded
tech v: restart/restarted compile/compiled hack/hacked zoom/zoomed
tech a: digital wireless smart slow buggy glitchy offline online laggy refurbished encrypted outdated portable
tech a: automatic virtual cracked frozen overheated
food n: pizza pasta jalapeño burger taco sandwich salad soup bread cheese chocolate cake cookie pie coffee tea juice
food n: smoothie breakfast lunch dinner brunch snack recipe oven pan grill restaurant menu chef waiter burrito
food n: noodle dumpling curry steak chicken fish/fish rice bean avocado pancake waffle bagel muffin purée entrée
food n: crème brûlée soufflé donut cupcake lemonade milkshake popcorn pickle sauce spice flavor leftover kitchen
food n: fridge picnic buffet dessert croissant omelette
food v: bake grill fry/fried taste order cook chop/chopped/chopping stir/stirred/stirring season
food v: sauté/sautéed/sautéing reheat slice/sliced/slicing devour roast/roasted boil/boiled toast/toasted
food v: whisk/whisked munch/munched crave/craved
food a: delicious spicy sweet salty crispy greasy juicy bland homemade tasty vegan crunchy savory sour bitter creamy
food a: smoky tangy fluffy chewy stale moist
sports n: game team player coach match season goal score league referee fan stadium ball bat glove helmet trophy
sports n: championship playoff tournament pitch field court halftime jersey lineup rookie draft injury comeback
sports n: rival marathon race finish sprint workout
sports v: win/won/winning lose/lost score train cheer kick throw/threw catch/caught pass shoot/shot tackle
sports v: dribble/dribbled block/blocked sprint/sprinted defend/defended dunk/dunked serve/served
sports a: undefeated clutch athletic overrated underrated competitive fierce sloppy scrappy dominant defensive
sports a: unbeaten sweaty thrilling
politics n: election vote senator mayor governor president council debate campaign policy law bill tax budget
politics n: candidate poll ballot protest speech scandal reform committee government minister parliament district
politics n: citizen voter majority amendment
politics v: vote debate elect argue protest support oppose propose announce campaign/campaigned veto/vetoed
politics v: debate/debated lobby/lobbied resign/resigned
politics a: political local federal liberal conservative controversial public official bipartisan corrupt radical
politics a: moderate progressive partisan
travel n: trip vacation flight airport hotel passport luggage suitcase beach resort hostel map tour train station
travel n: ferry cruise itinerary souvenir visa border destination guide backpack airline layover terminal gate
travel n: boarding delay postcard road highway
travel v: travel fly/flew book pack land explore visit wander hike/hiked/hiking explore/explored cruise/cruised
travel v: backpack/backpacked roam/roamed commute/commuted
travel a: scenic foreign remote crowded touristy exotic international cozy charming overpriced sunny historic hidden
weather n: rain snow storm wind sun cloud fog thunder lightning heatwave forecast temperature umbrella puddle hail
weather n: drizzle blizzard rainbow frost humidity breeze sleet
weather v: pour freeze/froze melt shine/shone drizzle clear sprinkle/sprinkled flood/flooded thaw/thawed blow/blew
weather a: sunny rainy windy cloudy foggy humid freezing chilly stormy gloomy snowy misty muggy crisp breezy mild
weather a: bitter
music n: song album band concert guitar piano drum singer lyric playlist festival vinyl chorus melody tune beat
music n: track radio headphone tour rapper drummer violin karaoke soundtrack
music v: sing/sang play listen dance hum/hummed/humming record release strum/strummed/strumming compose/composed
music v: remix/remixed tune/tuned rehearse/rehearsed
music a: catchy acoustic loud classical underground live groovy soulful upbeat haunting melodic funky
family n: mom dad fiancé sister brother grandma grandpa aunt uncle cousin kid baby son daughter wife husband parent
family n: niece nephew toddler twin family/families relative grandkid
family v: hug/hugged/hugging babysit/babysat/babysitting raise visit call adopt/adopted parent/parented
family v: scold/scolded spoil/spoiled cuddle/cuddled
family a: adorable grumpy wholesome supportive overprotective chaotic protective sweet cranky loving patient
work n: job boss résumé office meeting email deadline project report client coworker manager salary resume interview
work n: promotion shift spreadsheet presentation contract intern paycheck desk commute workload agenda
work v: work hire fire quit/quit/quitting apply/applied present schedule email delegate/delegated
work v: negotiate/negotiated invoice/invoiced network/networked
work a: professional productive stressful remote corporate overworked underpaid hybrid efficient urgent
health n: doctor nurse hospital medicine vitamin flu cold headache fever appointment diet water yoga gym workout
health n: run/runs nap sleep therapy stretch muscle knee back allergy
health v: rest recover stretch exercise meditate sneeze cough jog/jogged/jogging heal/healed lift/lifted
health v: sweat/sweated
health a: healthy sick sore exhausted fit hydrated dizzy feverish sleepy achy strong flexible
movies n: movie film show episode series/series season trailer actor actress director scene plot ending sequel
movies n: theater popcorn remake documentary cartoon villain hero character spoiler
movies v: watch binge/binged/bingeing rewatch stream spoil direct/directed film/filmed review/reviewed cast/cast
movies a: boring dramatic hilarious scary emotional predictable cinematic gripping cheesy animated thrilling
movies a: forgettable
pets n: dog cat puppy kitten leash collar treat toy vet bird hamster fish/fish parrot rabbit bowl cage litter walk
pets n: tail paw fur bark
pets v: feed/fed walk adopt pet/petted/petting groom bark scratch chase/chased nap/napped/napping sniff/sniffed
pets v: purr/purred
pets a: fluffy furry playful sleepy stubborn loyal clingy shy hungry curious mischievous
gaming n: game console controller level boss quest character server stream streamer player achievement multiplayer
gaming n: headset mod patch dungeon sword spell inventory lobby
gaming v: play grind/ground stream respawn/respawned/respawning craft beat/beat level/leveled loot/looted
gaming v: camp/camped speedrun/speedran/speedrunning
gaming a: legendary rare broken casual hardcore competitive pixelated overpowered unplayable addictive
school n: class teacher student homework exam test essay lecture professor grade semester campus library notebook
school n: backpack textbook assignment quiz degree classmate tutor diploma
school v: study/studied learn pass fail graduate write/wrote memorize cram/crammed/cramming review/reviewed
school v: lecture/lectured enroll/enrolled
school a: academic difficult confusing fascinating boring strict brilliant required optional
"""

PLACES = ("Paris Tokyo Denver Lisbon Chicago Boston Seattle Austin London Berlin Rome Madrid Toronto Dublin "
          "Sydney Oslo Nashville Portland").split()
NAMES = "Sam Alex Jordan Taylor Chris Jamie Morgan Riley Casey Jess Mike Sarah Emma Noah Liam Olivia".split()
OPENERS = ("", "", "", "", "honestly ", "i think ", "ngl ", "tbh ", "okay so ", "not gonna lie ", "so ",
           "well ", "i mean ", "lowkey ", "guess what, ", "fun fact: ", "update: ", "reminder: ",
           "unpopular opinion: ", "yeah ", "wow ", "be honest, ", "real talk: ")
TIMES = ("in the morning", "last night", "this weekend", "today", "tonight", "right now", "all day", "again",
         "every day", "for the first time", "yesterday", "this morning", "after work", "on {DAY}",
         "at {HOUR}", "every {DAY}", "last {UNIT}", "this {UNIT}", "in {FEW} {UNIT}s", "before lunch",
         "after school", "since {DAY}", "all {UNIT} long", "once again", "at the last minute", "on {DAY} night",
         "{DAY} morning", "after the {N}", "before {DAY}", "during the {N}", "{FEW} {UNIT}s ago", "on my lunch break",
         "at {HOUR} on a {DAY}", "the whole {UNIT}", "back in {YEAR}", "first thing {DAY}")
ENDINGS = ("lol", "haha", "smh", "ugh", "send help", "no regrets", "just saying", "fr", "i guess",
           "wish me luck", "not complaining", "worth it", "oops", "yikes", "love that", "again", "help")
SUPERLATIVES = ("best", "worst", "weirdest", "funniest", "biggest", "coolest", "most annoying", "greatest",
                "strangest", "cutest", "nicest", "hardest", "easiest", "most beautiful", "smallest")
INTENSIFIERS = ("so", "really", "super", "pretty", "way too", "kind of", "absolutely", "literally",
                "very", "totally", "a little", "incredibly", "too")
AUX = ("can't", "will", "should", "need to", "want to", "have to", "gotta", "might", "could", "never",
       "always", "don't", "didn't", "just", "really want to", "would")
AUX3 = ("can't", "will", "should", "might", "could", "won't", "needs to", "has to", "wants to", "never",
        "always", "just", "didn't", "doesn't")
PREPS = ("in", "with", "at", "for", "from", "on", "after", "about", "near", "without", "during", "before",
         "around", "behind", "under", "like")
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
UNITS = ("day", "week", "month", "year", "hour", "weekend")
FEW = ("two", "three", "a few", "so many", "like five", "four", "six", "a couple of")
HOURS = ("2pm", "7am", "noon", "midnight", "5pm", "9am", "3am", "6pm")
NUMBERS = ("2", "3", "4", "5", "10", "12", "20", "45", "100", "$5", "$20", "$100", "10k", "50%", "2024", "3")
TAGS = ("#tbt", "#blessed", "#mood", "#goals", "#fail", "#weekend", "#nofilter", "#relatable", "#foodie",
        "#gameday", "#throwback", "#mondays", "#lifehack", "#truestory")

ADVERBS = ("really", "just", "actually", "finally", "accidentally", "totally", "literally", "somehow", "barely",
           "already", "also", "basically", "almost", "kinda", "probably", "secretly", "quietly", "happily", "still")
# "[a|b|c]" picks one alternative; "{X}" fills a slot (see Gen.slots and Gen.small)
POST_TEMPLATES = (
    "{O}{S} {Vd} {NP} {T}.", "{O}{S1} {AUX} {V} {NP} {PP}.", "{NP3} [is|was|looks|seems|felt] {INT} {A} {T}.",
    "[can't believe|cannot believe|still can't believe|no way|wild that|crazy how] {S} {Vd} {NP} {T}!",
    "[anyone else|who else is|is anybody else|raise your hand if you're] {Vg} {NPs} {T}?",
    "just {Vd} {NP} [&|and|and honestly] [it was|it's|that was|the {N} was] {INT} {A}.",
    "my {F} {Vd} {NP} {PP} {E}",
    "{O}[this is|that was|this might be|easily] one of the {SUP} {Ns} [i've ever seen|in {PLACE}|{T}|ever].",
    "why does {NP3} [always|never|still|keep trying to] {V} {PP}?",
    "{NUM} {Ns} {PP} and [still no|not a single|zero|no] {N}.",
    "{O}[i think|i feel like|pretty sure|i bet|i swear] {NP3} {AUX3} {V} {NP}.", "{Vg} {NP} {T} {E}",
    "[i'm|we're|currently|still] {Vg} {NP} {PP} [right now|as we speak|at the moment|{T}].",
    "[i'm|we're|everyone is|my {F} is] {INT} {A} about {NP}.",
    "if you {V} {NP}, [you|then you|you probably|{NAME} says you] {AUX} {V} {NP}.", "{NP3} {Vz} {NP} {PP}.",
    "we {Vd} {NP} {PP} and it was {A}.", "{O}i {Vd} {NP} {T} [and now|so now|but now|which means] i {AUX} {V} {NP}.",
    "[nobody|no one|literally nobody] {Vz} {NP} like {NAME} [does|lol|{T}].", "{A} {N} {T}!", "who {Vz} {NP} {T}?",
    "[i really need to|i should|i have to|somebody needs to|time to] {V} {NP} {T}.",
    "the {N} at {NP} {Vd} {NP} {T}.", "[hot take|unpopular opinion|controversial but|fact]: {NPs} are {INT} {A}.",
    "{T}, {S} {Vd} {NP}.", "[still thinking about|can't stop thinking about|not over|dreaming about] {NP} {PP}.",
    'my {F} [keeps calling|called|calls] {NP} "{A}" {E}',
    "[does anyone know where to|where can i|where do people|how do you] {V} {NP}?",
    "[thank you|thanks|big thanks to] {NAME} for {Vg} {NP}!",
    "{O}i [don't|never|rarely|can't] {V} {NPs} [much|often|anymore].",
    "[what's|what is|name] the {SUP} {N} for {Vg} {NP}?", "{NUM} [days|hours|weeks|sleeps] until {NP}!",
    "there's [a|this|some] {A} {N} {PP} {E}", "we should [probably|totally|] {V} {NP} {T}.",
    "{S} {Vd} {NP} [so|and then|which is why] i {Vd} {NP}.", "shoutout to {NAME} for the {A} {N}.",
    "[never|not|done] {Vg} {NP} [again|ever again|after {DAY}].",
    "[it's been|been|almost|already] {FEW} {UNIT}s since [i|we|my {F}] {Vd} {NP}.", "the {A} part? {NP3} {Vd} {NP}.",
    "{NAME} and i {Vd} {NP} in {PLACE} {T}.", "{PLACE} [is|was|looks] {INT} {A} {T}.",
    "[is it just me or|honest question:|serious question,] is {NP3} {INT} {A}?", "{NP3} and {NP} {PP} {T}.",
    "{A} {N}, {A} {N}, {A} {N}.", "{Vg} {NP} [while|after|before|instead of] {Vg} {NP}.",
    "{NAME} [said|says|thinks|swears] {NPs} are {A}.",
    "[first|second|third|last] {N} of the {UNIT} [and|but] {S} {Vd} {NP}.",
    "{NUM} {A} {Ns} [later|after that|so far] and {S} {Vd} {NP}.",
    "[petition to|we need to|let's] {V} {NPs} [forever|already|now].",
)
PAGE_TEMPLATES = (
    "The {A} {N} {Vz} {NP} {PP}.", "Many {Ns} {V} {NP} because {S} {Vd} {NP}.", "In {YEAR}, {NP} {Vd} {NP} {PP}.",
    "[According to|Says|Ask] {NAME}, {NPs} {V} {NP} {PP}.",
    "There are {FEW} {Ns} {PP}, and [each one|every one] {Vz} {NP}.",
    "{Vg} {NP} is {INT} {A} for {NPs}.", "[Most|Some|Few|Local] {Ns} {AUX} {V} {NP} {T}.",
    "This {N} {Vz} {NP} and {Vz} {NP}.", "If you {V} {NP}, the {N} {AUX3} {V} {NP}.",
    "One of the {SUP} {Ns} {PP} is {NP}.", "[For example|For instance|Similarly], {NP3} {Vz} {NP} {PP}.",
    "[However|Still|Meanwhile], {NPs} {Vd} {NP} {T}.", "It [is|can be|was] {A} to {V} {NP} {PP}.",
    "You can {V} {NP} {PP} or {V} {NP}.", "Our {N} {Vz} {NP} {PP} every {UNIT}.", "The {N} of {NP} {Vz} {A}.",
    "Some {Ns} {Vd} {NP}, while others {Vd} {NP}.", "Visitors to {PLACE} often {V} {NPs} {PP}.",
    "{NP3} [was|became|stays] {A} {PP} and {NP} {Vd} {NP}.",
    "[Experts|Readers|Locals] [say|think|agree] that {NPs} {V} {NP}.",
)
TITLE_TEMPLATES = ("The {SUP} {Ns} for {Vg} {NP}", "How to {V} {NP} {PP}", "{NUM} {A} {Ns} {PP}",
                   "Why {NPs} {V} {NP}", "A guide to {Vg} {NPs} in {PLACE}")
DANGLING = set("the a an my your our their his her this that some of to and with in on at for from & so or "
               "but about near like is are was i we you".split())


def parse_vocab(block: str) -> dict[str, dict[str, list[str]]]:
    """Parse VOCAB into {topic: {pos: entries}}."""
    out: dict[str, dict[str, list[str]]] = {}
    for line in block.strip().splitlines():
        key, words = line.split(":", 1)
        topic, pos = key.split()
        out.setdefault(topic, {}).setdefault(pos, []).extend(words.split())
    return out


def inflect_noun(entry: str) -> tuple[str, str]:
    """Singular and plural forms of a noun entry."""
    if "/" in entry:
        sing, plur = entry.split("/")
        return sing, plur
    if entry.endswith(("s", "sh", "ch", "x", "z")):
        return entry, entry + "es"
    if entry.endswith("y") and entry[-2] not in "aeiou":
        return entry, entry[:-1] + "ies"
    return entry, entry + "s"


def inflect_verb(entry: str) -> tuple[str, str, str, str]:
    """Base, 3rd-singular, past and -ing forms of a verb entry."""
    parts = entry.split("/")
    base = parts[0]
    cons_y = base.endswith("y") and base[-2] not in "aeiou"
    if base.endswith(("s", "sh", "ch", "x", "z", "o")):
        third = base + "es"
    else:
        third = base[:-1] + "ies" if cons_y else base + "s"
    past = parts[1] if len(parts) > 1 else (base + "d" if base.endswith("e") else
                                            base[:-1] + "ied" if cons_y else base + "ed")
    if len(parts) > 2:
        ing = parts[2]
    elif base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        ing = base[:-1] + "ing"
    else:
        ing = base + "ing"
    return base, third, past, ing


class Lex(Generic[T]):
    """A word list sampled with Zipf-Mandelbrot weights 1/(rank+2.7)^s (earlier entries are commoner)."""

    def __init__(self, items: Iterable[T], s: float = 1.0) -> None:
        self.items = list(items)
        self.cum: list[float] = []
        acc = 0.0
        for rank in range(len(self.items)):
            acc += 1.0 / (rank + 2.7) ** s
            self.cum.append(acc)

    def pick(self, rng: random.Random) -> T:
        return rng.choices(self.items, cum_weights=self.cum)[0]


class Gen:
    """Template grammar producing social posts, web pages and assistant chatter."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        vocab = parse_vocab(VOCAB)
        self.topics = [t for t in vocab if t != "general"]
        self.nouns = {t: Lex([inflect_noun(e) for e in d["n"]], 0.8) for t, d in vocab.items()}
        self.verbs = {t: Lex([inflect_verb(e) for e in d["v"]], 0.8) for t, d in vocab.items()}
        self.adjs = {t: Lex(d["a"], 0.8) for t, d in vocab.items()}
        forms = {w for lx in self.nouns.values() for it in lx.items for w in it}
        forms |= {w for lx in self.verbs.values() for it in lx.items for w in it}
        forms |= {w for lx in self.adjs.values() for w in lx.items}
        self.all_words = sorted(forms | set(FUNCTION_WORDS))
        self.small = {name: Lex(items, 0.9 if name in ("O", "E", "NUM") else 0.7) for name, items in (
            ("O", OPENERS), ("T", TIMES), ("E", ENDINGS), ("SUP", SUPERLATIVES), ("INT", INTENSIFIERS),
            ("AUX", AUX), ("AUX3", AUX3), ("PREP", PREPS), ("DAY", DAYS), ("UNIT", UNITS), ("FEW", FEW),
            ("HOUR", HOURS), ("NUM", NUMBERS), ("NAME", NAMES), ("PLACE", PLACES), ("TAG", TAGS),
            ("POST", POST_TEMPLATES), ("PAGE", PAGE_TEMPLATES), ("TITLE", TITLE_TEMPLATES))}
        self.topic = self.topics[0]
        self.slots: dict[str, Callable[[], str]] = {
            "N": lambda: self.noun()[0], "Ns": lambda: self.noun()[1], "A": lambda: self.adj(),
            "V": lambda: self.adv() + self.verb(0), "Vz": lambda: self.adv() + self.verb(1),
            "Vd": lambda: self.adv() + self.verb(2),
            "Vg": lambda: self.verb(3), "NP": self.np, "NP3": lambda: self.np(plural=False),
            "NPs": lambda: self.np(plural=True), "PP": lambda: f"{self.pick('PREP')} {self.np()}",
            "S": lambda: self.expand(self.subject()),
            "S1": lambda: self.rng.choice(("i", "we", "you", "they", "people", "my friends")),
            "F": lambda: self.nouns["family"].pick(self.rng)[0],
            "YEAR": lambda: str(self.rng.randint(1950, 2024)),
        }

    def pick(self, name: str) -> str:
        return self.expand(self.small[name].pick(self.rng))

    def _topic_for_word(self) -> str:
        return self.topic if self.rng.random() < 0.6 else "general"

    def noun(self) -> tuple[str, str]:
        return self.nouns[self._topic_for_word()].pick(self.rng)

    def verb(self, form: int) -> str:
        return self.verbs[self._topic_for_word()].pick(self.rng)[form]

    def adj(self) -> str:
        return self.adjs[self._topic_for_word()].pick(self.rng)

    def adv(self) -> str:
        """An optional adverb (with trailing space) placed before a verb."""
        return self.rng.choice(ADVERBS) + " " if self.rng.random() < 0.2 else ""

    def np(self, plural: bool | None = None) -> str:
        """A determiner phrase: determiner, optional adjective, noun."""
        rng = self.rng
        if plural is None:
            plural = rng.random() < 0.3
        sing, plur = self.noun()
        words = [self.adj()] if rng.random() < 0.35 else []
        if plural:
            det = rng.choice(("the", "my", "some", "these", "all the", "", "our", "those", "{NUM}", "{FEW}"))
            words = [self.expand(det)] + words + [plur]
        else:
            det = rng.choice(("the", "the", "a", "a", "my", "this", "that", "our", "your", "his", "her"))
            if det == "a" and (words or [sing])[0][0] in "aeiou":
                det = "an"
            words = [det] + words + [sing]
        return " ".join(w for w in words if w)

    def subject(self) -> str:
        r = self.rng.random()
        if r < 0.35:
            return "i"
        if r < 0.5:
            return "we"
        if r < 0.65:
            return "my " + self.nouns["family"].pick(self.rng)[0]
        return self.rng.choice(("the {N}", "everyone", "my friends", "you", "they", "he", "she", "people",
                                "{NAME}", "my {F} and i", "this {N}"))

    def expand(self, template: str) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            return self.slots[key]() if key in self.slots else self.pick(key)
        template = re.sub(r"\[([^][]*)\]", lambda m: self.rng.choice(m.group(1).split("|")), template)
        return re.sub(r"\{(\w+)\}", sub, template)

    def sentence(self, kind: str, lower: bool) -> str:
        s = self.expand(self.small[kind].pick(self.rng))
        s = re.sub(r"\s+", " ", s).strip()
        if lower:
            return s.lower()
        s = re.sub(r"(?<![\w'’])i(?=$|[\s'.,!?])", "I", s)
        return s[:1].upper() + s[1:]

    def post(self, n_words: int, topic: str | None = None) -> str:
        """A social post of at most n_words (and at least 10) whitespace-separated words."""
        rng = self.rng
        self.topic = topic or rng.choice(self.topics)
        lower = rng.random() < 0.4
        extra = list(dict.fromkeys(self.pick("TAG") if rng.random() < 0.5 else "#" + self.noun()[0]
                                   for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3)))))
        if rng.random() < 0.08:
            extra.insert(0, "@" + rng.choice(NAMES).lower() + str(rng.randint(1, 99)))
        if n_words - len(extra) < 9:  # hashtags never make up most of a short post
            extra = []
        body_n = n_words - len(extra)
        toks: list[str] = []
        misses = 0
        while len(toks) < body_n:  # whole sentences; cut one only after repeated misses
            sent = self.sentence("POST", lower).split()
            if len(toks) + len(sent) <= body_n:
                toks += sent
            elif (misses := misses + 1) >= 20:
                if len(toks) + len(extra) >= 10 and len(toks) >= body_n - 6:
                    break
                toks += sent[: body_n - len(toks)]
                while toks[-1].lower().strip(".,!?:") in DANGLING and len(toks) + len(extra) > 10:
                    toks.pop()
                break
        if extra and extra[0].startswith("@"):
            return " ".join([extra[0]] + toks + extra[1:])
        return " ".join(toks + extra)

    def page(self, n_words: int, topic: str | None = None, insert: str | None = None,
             title: bool = True) -> str:
        """A web-page-like document of paragraphs; `insert` is placed at a sentence boundary."""
        rng = self.rng
        self.topic = topic or rng.choice(self.topics)
        paras: list[list[str]] = []
        total = 0
        while total < n_words:
            para: list[str] = []
            for _ in range(rng.randint(3, 8)):
                s = self.sentence("PAGE" if rng.random() < 0.55 else "POST", lower=False)
                para.append(s)
                total += len(s.split())
                if total >= n_words:
                    break
            paras.append(para)
        if insert is not None:
            para = rng.choice(paras)
            para.insert(rng.randint(0, len(para)), insert)
        body = "\n\n".join(" ".join(p) for p in paras)
        if not title:
            return body
        head = self.expand(self.small["TITLE"].pick(rng))
        return " ".join(w[:1].upper() + w[1:] for w in head.split()) + "\n\n" + body


def gram_keys(text: str) -> set[str]:
    """Word 3-grams after a rough normalisation (lowercase, apostrophes dropped, other symbols to spaces)."""
    toks = re.sub(r"[^\w\s]|_", " ", text.lower().replace("'", "")).split()
    return {" ".join(toks[i:i + 3]) for i in range(len(toks) - 2)}


def common_grams(gen: Gen, min_df: int = 4) -> set[str]:
    """3-grams occurring in >= min_df of a calibration sample of generated posts and pages."""
    df: dict[str, int] = {}
    docs = [gen.post(post_length(gen.rng)) for _ in range(3000)] + [gen.page(1500) for _ in range(60)]
    for doc in docs:
        for g in gram_keys(doc):
            df[g] = df.get(g, 0) + 1
    return {g for g, c in df.items() if c >= min_df}


def post_length(rng: random.Random) -> int:
    """Post length in words: ~5% very short (10-14), otherwise 15-80 skewed to ~30."""
    return rng.randint(10, 14) if rng.random() < 0.05 else int(rng.triangular(15, 81, 28))


# --- transformations, one function per planted kind -----------------------------------------------
def kind_case(rng: random.Random, text: str) -> str:
    """Upper, lower or title case; never returns the text unchanged."""
    def title(t: str) -> str:
        return " ".join(re.sub(r"[a-zà-ÿ]", lambda m: m.group(0).upper(), w.lower(), count=1) for w in t.split(" "))
    for mode in rng.sample(("upper", "lower", "title"), 3):
        out = {"upper": text.upper(), "lower": text.lower(), "title": title(text)}[mode]
        if out != text:
            return out
    return text.upper()


def kind_whitespace(rng: random.Random, text: str) -> str:
    """Doubled spaces, newlines/tabs between words, leading/trailing whitespace."""
    seps = (" ", " ", " ", "  ", "\n", "\t", " \n ", "   ", "\n\n")
    words = text.split(" ")
    out = rng.choice(("", " ", "  ", "\n", "\t", " \n"))
    for i, w in enumerate(words):
        out += w + (rng.choice(seps) if i < len(words) - 1 else "")
    out += rng.choice(("", " ", "  ", "\n", "\t", "\n\n"))
    return out if out != text else "  " + out + "\n"


def kind_punctuation(rng: random.Random, text: str) -> str:
    """Strip or change punctuation; in-word apostrophes become curly or vanish, never a space."""
    ops = rng.sample(("strip", "curly", "bang", "ending", "apostrophe"), rng.randint(1, 3))
    out = text
    if "strip" in ops:
        out = "".join(c for c in out if c == "'" or not unicodedata.category(c).startswith("P"))
        out = " ".join(out.split())
    if re.search(r"\w'\w", out) and not {"apostrophe", "curly"} & set(ops) and rng.random() < 0.7:
        ops.append(rng.choice(("apostrophe", "curly")))  # in-word apostrophes change in most items
    if "apostrophe" in ops:
        out = re.sub(r"(?<=\w)'(?=\w)", "", out)
    if "curly" in ops:
        out = re.sub(r"(?<=\w)'(?=\w)", "\u2019", out)
        quotes = iter(["\u201c", "\u201d"] * out.count('"'))
        out = re.sub('"', lambda m: next(quotes), out)
    if "bang" in ops:
        out = out.replace(".", "!")
    if "ending" in ops or out == text:
        out = out.rstrip(".!?") + rng.choice(("!!!", "...", "!!", "?!"))
    return out


FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}


def kind_unicode(rng: random.Random, text: str) -> str:
    """NFKC-foldable variants: fullwidth, NBSP, ZWSP/soft hyphen, fi/fl ligatures, decomposed accents."""
    words = text.split(" ")
    ops = ["fullwidth", "nbsp", "format"]
    if re.search("f[il]", text):
        ops.append("ligature")
    if any(ord(c) > 127 and c.isalpha() for c in text):
        ops.append("nfd")
    chosen = rng.sample(ops, rng.randint(2, len(ops)))
    if "fullwidth" in chosen:
        for i in rng.sample(range(len(words)), min(len(words), rng.randint(1, 3))):
            words[i] = "".join(FULLWIDTH.get(c, c) for c in words[i])
    if "ligature" in chosen:
        words = [w.replace("fi", "\ufb01").replace("fl", "\ufb02") if rng.random() < 0.8 else w for w in words]
    if "format" in chosen:
        long_idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()] or [0]
        for i in rng.sample(long_idx, min(len(long_idx), rng.randint(1, 3))):
            w = words[i]
            if len(w) >= 2:
                k = rng.randint(1, len(w) - 1)
                words[i] = w[:k] + rng.choice(("\u200b", "\u00ad")) + w[k:]
    seps = ["\u00a0" if "nbsp" in chosen and rng.random() < 0.6 else " " for _ in words[1:]]
    out = words[0] + "".join(s + w for s, w in zip(seps, words[1:]))
    if "nfd" in chosen:
        out = unicodedata.normalize("NFD", out)
    return out if out != text else text.replace(" ", "\u00a0")


def kind_edit(rng: random.Random, text: str, rate: float, vocab: list[str]) -> str:
    """round(rate*n) (>=1) word edits: substitute 60%, delete 20%, insert-after 20%."""
    toks = text.split()
    for i in sorted(rng.sample(range(len(toks)), max(1, round(rate * len(toks)))), reverse=True):
        r, new = rng.random(), rng.choice(vocab)
        if r < 0.6:
            pre, core, post = re.match(r"^(\W*)(.*?)(\W*)$", toks[i], re.S).groups()  # type: ignore[union-attr]
            while new == core.lower():
                new = rng.choice(vocab)
            toks[i] = pre + (new.capitalize() if core[:1].isupper() else new) + post
        elif r < 0.8:
            del toks[i]
        else:
            toks.insert(i + 1, new)
    return " ".join(toks)


def kind_truncate(text: str, frac: float = 0.7) -> str:
    """The first ceil(frac*n) words."""
    toks = text.split()
    return " ".join(toks[: math.ceil(frac * len(toks))])


def kind_hard_negative(rng: random.Random, text: str, gen: Gen) -> str:
    """The item's words shuffled into filler, plus one contiguous fragment of <=20% of its words."""
    toks = text.split()
    frag_len = rng.randint(1, max(1, len(toks) // 5))
    start = rng.randint(0, len(toks) - frag_len)
    fragment = toks[start: start + frag_len]
    loose = [t.strip(".,!?:\"").lower() or t for t in toks[:start] + toks[start + frag_len:]]
    rng.shuffle(loose)
    out = gen.post(max(10, len(toks))).split()
    for t in loose:
        out.insert(rng.randint(0, len(out)), t)
    at = rng.randint(0, len(out))
    return " ".join(out[:at] + fragment + out[at:])


# --- model outputs ---------------------------------------------------------------------------------
SYSTEM = ("You are a helpful assistant.", "You are a friendly chatbot. Answer briefly.",
          "You are an assistant that helps people write social media posts.")
ASK = ("Write a short post about {N}.", "What do people usually say about {Ns}?", "Can you share a post about {NP}?",
       "Give me an example of a post about {N}.", "Tell me something about {Ns}.",
       "Do you remember that post about {N}?")
SURE = ("Sure! Here's the post:", "Of course. Here is the text:", "Here's what I found:", "Absolutely, here it is:",
        "I remember this one. It goes like this:", "Here you go:", "Sure, this is the one you mean:")
CLOSE = ("Let me know if you want a different version.", "Hope that helps!", "Is there anything else you need?",
         "I can also summarize it if you like.", "")
QUOTE = ('One post I remember said: "{item}" It got a lot of replies.', 'As one user put it, \u201c{item}\u201d',
         'Someone wrote "{item}" and people kept sharing it.', 'The classic example is "{item}", which went viral.')


def chatter(gen: Gen, k: int) -> str:
    """k sentences of neutral assistant-style prose."""
    return " ".join(gen.sentence("PAGE", lower=False) for _ in range(k))


def make_output(rng: random.Random, gen: Gen, kind: str, item: str | None) -> tuple[str, str, float | None]:
    """Return (prompt, answer, fraction) for one output sample of the given kind."""
    gen.topic = rng.choice(gen.topics)
    prompt, frac = gen.expand(rng.choice(ASK)), None
    close = rng.choice(CLOSE)
    if kind in ("verbatim", "chat"):
        answer = f"{rng.choice(SURE)}\n\n{item}\n\n{close}"
    elif kind == "partial":
        toks = (item or "").split()
        k = rng.randint(math.ceil(0.5 * len(toks)), len(toks) - 1)
        start = rng.randint(0, len(toks) - k)
        frac = round(k / len(toks), 4)
        span = " ".join(toks[start:start + k])
        answer = f"{chatter(gen, rng.randint(1, 2))} {span} {chatter(gen, rng.randint(1, 3))}"
    elif kind == "quoted":
        answer = f"{chatter(gen, rng.randint(1, 2))} {rng.choice(QUOTE).format(item=item)} {close}"
    elif kind == "prompt_echo":
        toks = (item or "").split()
        prompt = f"Continue this post: {' '.join(toks[: max(4, len(toks) // 2)])}"
        answer = f"{gen.post(rng.randint(15, 40))} {close}"
    else:  # clean
        answer = f"{chatter(gen, rng.randint(2, 5))} {close}"
    return prompt, answer.strip(), frac


OUTPUT_FORMAT = {"outputs/plain.jsonl": ("plain", "text"), "outputs/prompt_completion.jsonl": ("pc", "completion"),
                 "outputs/chat.jsonl": ("chat", "assistant")}  # file -> (sample id prefix, audited field)
OUTPUT_PLAN = {  # file -> {kind: count}
    "outputs/plain.jsonl": {"verbatim": 20, "partial": 20, "quoted": 20, "clean": 40},
    "outputs/prompt_completion.jsonl": {"verbatim": 15, "partial": 15, "quoted": 15, "prompt_echo": 20, "clean": 35},
    "outputs/chat.jsonl": {"chat": 30, "partial": 15, "quoted": 10, "prompt_echo": 15, "clean": 30},
}


def build_outputs(rng: random.Random, gen: Gen, refs: list[dict[str, str]]) -> tuple[dict[str, list[dict[str, Any]]],
                                                                                    list[dict[str, Any]]]:
    """Model-output samples in three formats, and their truth rows."""
    pool = iter(refs)
    files: dict[str, list[dict[str, Any]]] = {}
    truth: list[dict[str, Any]] = []
    for fname, plan in OUTPUT_PLAN.items():
        kinds = [k for k, n in plan.items() for _ in range(n)]
        rng.shuffle(kinds)
        prefix, field = OUTPUT_FORMAT[fname]
        rows: list[dict[str, Any]] = []
        for i, kind in enumerate(kinds, 1):
            ref = None if kind == "clean" else next(pool)
            prompt, answer, frac = make_output(rng, gen, kind, ref["text"] if ref else None)
            sid = f"{prefix}-{i:04d}"
            if field == "text":
                rows.append({"id": sid, "text": answer})
            elif field == "completion":
                rows.append({"id": sid, "prompt": prompt, "completion": answer})
            else:
                msgs = [{"role": "system", "content": rng.choice(SYSTEM)}]
                if rng.random() < 0.4:  # an earlier, unrelated exchange
                    msgs += [{"role": "user", "content": gen.expand(rng.choice(ASK))},
                             {"role": "assistant", "content": chatter(gen, 2)}]
                msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
                rows.append({"id": sid, "messages": msgs})
            truth.append({"sample_id": sid, "file": fname, "reference_id": ref["id"] if ref else None,
                          "kind": kind, "fraction": frac, "field": field})
        files[fname] = rows
    return files, truth


# --- shards ----------------------------------------------------------------------------------------
def build_shards(rng: random.Random, gen: Gen, groups: dict[str, list[dict[str, str]]]
                 ) -> tuple[list[list[dict[str, str]]], list[dict[str, Any]]]:
    """Planted + filler records for each shard, and one truth row per planted pair."""
    planted: list[tuple[int, str, list[dict[str, Any]]]] = []  # (shard, text, truth rows)

    def where(weights: tuple[float, float, float]) -> int:
        return rng.choices(range(3), weights=weights)[0]

    def row(ref: dict[str, str], kind: str, rate: float | None = None) -> dict[str, Any]:
        return {"reference_id": ref["id"], "kind": kind, "rate": rate}

    single: dict[str, Callable[[str], str]] = {
        "verbatim": lambda t: t, "case": lambda t: kind_case(rng, t), "whitespace": lambda t: kind_whitespace(rng, t),
        "punctuation": lambda t: kind_punctuation(rng, t), "unicode": lambda t: kind_unicode(rng, t),
        "truncate70": kind_truncate, "hard_negative": lambda t: kind_hard_negative(rng, t, gen),
        **{k: (lambda r: lambda t: kind_edit(rng, t, r, gen.all_words))(r) for k, r in EDIT_RATES.items()},
    }
    for kind, fn in single.items():
        rate = EDIT_RATES.get(kind, 0.7 if kind == "truncate70" else None)
        for ref in groups[kind]:
            planted.append((where((0.45, 0.4, 0.15)), fn(ref["text"]), [row(ref, kind, rate)]))
    for ref in groups["embedded"]:
        shard = where((0.1, 0.1, 0.8))
        page = gen.page(int(rng.triangular(800, 2900, 1100)), insert=ref["text"])
        planted.append((shard, page, [row(ref, "embedded")]))
    items = list(groups["concatenated"])
    while items:
        k = rng.randint(3, 6)
        if len(items) - k < 3:  # never leave a remainder of 1-2 items
            k = len(items) if len(items) <= 6 else len(items) - 3
        chunk, items = items[:k], items[k:]
        parts = [r["text"] for r in chunk] + [gen.post(post_length(rng)) for _ in range(rng.randint(2, 8))]
        rng.shuffle(parts)
        planted.append((where((0.5, 0.4, 0.1)), "\n".join(parts), [row(r, "concatenated") for r in chunk]))

    shards: list[list[dict[str, str]]] = []
    truth: list[dict[str, Any]] = []
    for s, size in enumerate(SHARD_SIZES):
        mine = [p for p in planted if p[0] == s]
        texts: list[tuple[str, list[dict[str, Any]]]] = [(t, rows) for _, t, rows in mine]
        for _ in range(size - len(mine)):
            r = rng.random()
            if s == 2 or (s == 1 and r < 0.05):
                texts.append((gen.page(int(rng.triangular(800, 2900, 1000))), []))
            elif (s == 1 and r < 0.35) or (s == 0 and r < 0.05):
                texts.append((gen.page(rng.randint(100, 400), title=rng.random() < 0.5), []))
            else:
                texts.append((gen.post(post_length(rng)), []))
        rng.shuffle(texts)
        records = []
        for i, (text, rows) in enumerate(texts, 1):
            rid = f"t{s:02d}-{i:06d}"
            records.append({"id": rid, "text": text})
            truth += [{**r, "target_id": rid, "target_source": SHARDS[s]} for r in rows]
        shards.append(records)
    return shards, truth


# --- writing ---------------------------------------------------------------------------------------
def dumps(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")


def write(rel: str, rows: list[dict[str, Any]]) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith(".parquet"):
        table = pa.table({"id": pa.array([r["id"] for r in rows], pa.string()),
                          "text": pa.array([r["text"] for r in rows], pa.string())})
        pq.write_table(table, path, compression="zstd", compression_level=9)
    elif rel.endswith(".gz"):
        with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0,
                                                  compresslevel=9) as gz:
            gz.write(dumps(rows))
    else:
        path.write_bytes(dumps(rows))


def new_reference(gen: Gen, common: set[str], seen: set[str], stats: dict[str, int]) -> str:
    """A fresh, unique reference post with at most MAX_COMMON of its 3-grams frequent boilerplate."""
    while True:
        text = gen.post(post_length(gen.rng))
        grams = gram_keys(text)
        if len(grams & common) > MAX_COMMON * len(grams):  # mostly boilerplate: ambiguous ground truth
            stats["boilerplate_rejected"] += 1
        elif text not in seen:
            seen.add(text)
            return text


def guard_chance_overlap(gen: Gen, refs: list[dict[str, str]], corpus: list[str], free: set[str],
                         common: set[str], seen: set[str], stats: dict[str, int]) -> None:
    """Redraw items that appear nowhere but whose 3-gram containment in some record by chance exceeds
    MAX_CHANCE, so that the truth files stay unambiguous at the usual 0.5 containment threshold."""
    postings: dict[str, list[int]] = {}
    for i, text in enumerate(corpus):
        for g in gram_keys(text):
            postings.setdefault(g, []).append(i)
    index = {g: np.array(v, dtype=np.int32) for g, v in postings.items()}

    def worst(text: str) -> float:
        grams = gram_keys(text)
        hits = [index[g] for g in grams if g in index]
        return float(np.bincount(np.concatenate(hits)).max()) / len(grams) if hits else 0.0

    for ref in refs:
        while ref["id"] in free and worst(ref["text"]) > MAX_CHANCE:
            ref["text"] = new_reference(gen, common, seen, stats)
            stats["chance_overlap_redrawn"] += 1


def count(rows: list[dict[str, Any]]) -> str:
    kinds = sorted({r["kind"] for r in rows})
    return ", ".join(f"{k}={sum(r['kind'] == k for r in rows)}" for k in kinds)


def main() -> None:
    rng = random.Random(SEED)
    gen = Gen(rng)
    common = common_grams(gen)
    seen: set[str] = set()
    stats = {"boilerplate_rejected": 0, "chance_overlap_redrawn": 0}
    refs = [{"id": f"post-{i:05d}", "text": new_reference(gen, common, seen, stats)}
            for i in range(1, N_REFERENCE + 1)]
    order = refs[:]
    rng.shuffle(order)
    groups = {kind: order[i * PER_KIND:(i + 1) * PER_KIND] for i, kind in enumerate(SHARD_KINDS)}
    rest = order[len(SHARD_KINDS) * PER_KIND:]
    out_files, out_truth = build_outputs(rng, gen, rest)
    shards, truth = build_shards(rng, gen, groups)
    used = {r["reference_id"] for r in truth + out_truth}
    corpus = [r["text"] for s in shards for r in s] + [json.dumps(r, ensure_ascii=False) for rows in
                                                       out_files.values() for r in rows]
    guard_chance_overlap(gen, refs, corpus, {r["id"] for r in refs} - used, common, seen, stats)
    truth += [{"reference_id": r["id"], "target_id": None, "target_source": None, "kind": "unplanted", "rate": None}
              for r in refs if r["id"] not in {t["reference_id"] for t in truth}]
    truth.sort(key=lambda r: (r["reference_id"], r["target_source"] or "", r["target_id"] or ""))

    write("reference/posts.jsonl", refs)
    for rel, rows in zip(SHARDS, shards):
        write(rel, rows)
    write("truth.jsonl", truth)
    for rel, rows in out_files.items():
        write(rel, rows)
    write("outputs/truth.jsonl", sorted(out_truth, key=lambda r: (r["file"], r["sample_id"])))
    print(f"reference posts: {len(refs)} ({stats['boilerplate_rejected']} boilerplate candidates rejected, "
          f"{stats['chance_overlap_redrawn']} redrawn for chance overlap > {MAX_CHANCE})")
    print("target records:", ", ".join(f"{p}={len(s)}" for p, s in zip(SHARDS, shards)))
    print("shard truth:", count(truth))
    print("output samples:", count(out_truth))


if __name__ == "__main__":
    main()
