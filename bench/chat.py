"""
Message bodies that read like real chat, for the benchmark's rooms.

One repeated text (or "room-20-m5") compresses far better than people
talk, so a compressed link would look better than it is.  These bodies
are sentences of 1 to 30 everyday words, mostly short, with the
punctuation, numbers, the odd URL and emoji of a chat room; drawn from
C{random.Random} with a fixed seed, so every mode of a run (and every run)
sees the same conversation.

Each body ends with a short tag (C{#} and a base-36 serial) that makes it
unique: the benchmark's recorders know a message by its body.
"""

import random

from dmuc.muc.compact import base36

SEED = 20261201

WORDS = """
a about after again all almost also always am an and any anyone anything are around
as ask at away back bad be because been before being best better big bit book both
boss box break bring bug build bus busy but buy by call came can car care case cat
change check city clean close code coffee cold come coming cool could couple day days
deal did different dinner do does dog doing done door down drive during each early
easy eat else email end enough even evening ever every everyone exactly eye face fact
fair family far fast feel few file find fine first fix flight food for forgot free
friday friend from front full fun funny game gave get getting give glad go going gone
good got great group guess guy had half hand happy hard has have he head hear help
her here hey him his home hope hot hour house how huge i idea if important in inside
is it its job just keep kid kind know last late later least leave left let life like
line link list little live long look looks lost lot love lunch made make man many map
maybe me mean meeting message might mind minute miss money monday month more morning
most move much music must my name need never new news next nice night no nothing now
number of off office oh ok okay old on once one only open or order other our out over
page paper part party people person phone pick place plan play please point post
pretty price probably problem put question quick quite rain read ready real really
reason right road room run said same saturday saw say school see seems send sent
server set she should show side since sleep slow small so some someone something
soon sorry sound start still stop store story street stuff sunday sure take talk
team tell test than thanks that the their them then there these they thing things
think this those though thought through thursday time tired to today together told
tomorrow tonight too took town train tried true try trying tuesday turn two under
until up update us use used very wait walk want was watch water way we wednesday week
weekend well went were what when where which while who why will window with without
word work working world would wow write wrong yeah year yes yesterday yet you your
""".split()

EMOJI = ("🙂", "😂", "👍", "🎉", "🙈", "😅", "❤️", "🤔", "☕", "🚀")
DOMAINS = ("example.org", "example.com", "docs.example.net", "git.example.org")
ENDINGS = (".", ".", ".", "?", "!", "", "", "...")


class Chat:
    """A deterministic talker: L{bodies} hands out unique chat lines."""

    def __init__(self, seed=SEED):
        self.random = random.Random(seed)
        self.serial = 0

    def bodies(self, count):
        return [self.body() for _ in range(count)]

    def body(self):
        self.serial += 1
        return "%s #%s" % (self.sentence(), base36(self.serial))

    def sentence(self):
        r = self.random
        # Mostly short lines, a few long ones, as in a chat room.
        length = min(30, 1 + int(r.expovariate(1 / 6.0)))
        words = [r.choice(WORDS) for _ in range(length)]
        for i in range(len(words)):
            roll = r.random()
            if roll < 0.04:
                words[i] = self.number()
            elif roll < 0.09 and i < len(words) - 1:
                words[i] += ","
        if r.random() < 0.05:
            words.insert(r.randrange(len(words) + 1), self.url())
        if r.random() < 0.6:
            words[0] = words[0][:1].upper() + words[0][1:]
        text = " ".join(words) + r.choice(ENDINGS)
        if r.random() < 0.1:
            text += " " + r.choice(EMOJI)
        return text

    def number(self):
        r = self.random
        kind = r.random()
        if kind < 0.4:
            return str(r.randint(2, 100))
        if kind < 0.7:
            return "%d:%02d" % (r.randint(7, 23), r.choice((0, 15, 30, 45)))
        return str(r.randint(100, 99999))

    def url(self):
        r = self.random
        path = "/".join(r.choice(WORDS) for _ in range(r.randint(1, 3)))
        query = "?id=%d" % r.randint(1, 99999) if r.random() < 0.4 else ""
        return "https://%s/%s%s" % (r.choice(DOMAINS), path, query)
