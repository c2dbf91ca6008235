"""A visitor's or a bystander's private data, or the persona's family's: never guessed at, never
repeated."""

from __future__ import annotations

import re

from .text import lines, words

_WH = words("what what's whats who who's whos where where's wheres when when's how_old how_tall how_much how_many")
# What may stand between the question word and "my": "what colour is my hair", "what's the name of my dog".
_BEFORE_MY = words(
    "is are was were the a name names colour color kind sort type size of in on number first last full money"
)
PRIVATE = re.compile(
    # "is my wife cheating on me": only opening a question, as "is my" also runs through fair ones
    r"^ (?:so |and |but |tell me |honestly )?(?:is|are|does|did) my (?:boyfriend|girlfriend|husband|wife|partner|ex"
    r"|mum|mom|mother|dad|father|son|daughter|kids?|children|friends?|boss|neighbou?r|sister|brother|family)\b"
    + r"|\b"
    + lines(
        rf"""
        # anyone's details
        (?:his|her|their|the operator's|\w+'s) (?:private |personal |home |real |work |full )?(?:address
            |phone number|mobile number|number(?! one)|password|pin|bank (?:account|details|balance|card|pin|number)
            |credit card|card number
            |social security(?: number)?|passport|email(?: address)?|e mail|date of birth|salary|medical
            |health records?)
        (?!(?:this|its|is|was|has|does|us|as|yes|thus|plus
            |whats)\b)\w+s (?:home |private |personal |email )?(?:address|phone number|mobile number|email|password
            |pin)
        (?:address|phone number|email|whereabouts) of (?!(?:your|the (?:lab|film|festival|website|cinema))\b)
        (?:my|his|her|their) (?:date of birth|location)
        (?:when|what)(?:'s| is| was) (?:his|her|their|\w+'s) (?:birthday|date of birth)
        your (?:password|passcode|pin|bank (?:account|details|card|pin)|credit card|debit card|card number
            |social security|passport|account number|phone number|mobile number|email address|e mail|login|username
            |date of birth)
        (?:how much|what) does (?:my|his|her|their) \w+ (?:earn|make)
        where (?:do|does) (?:i|he|she|they|(?!you)[\w']+(?:\s[\w']+){{0,6}}) (?:live|work|stay)
        where(?:'s|s| is| are) (?:\w+ ){{0,4}}(?:right now|staying|tonight|now|at the moment)
        what street
        house number
        number plate
        licen[cs]e plate
        registration number
        which school
        social security
        real name of
        track (?:me|him|her)
        my ex
        # bystanders and other visitors
        name of (?:the|that) (?:person|guy|man|woman|girl|boy|kid|lady) (?:next|behind|beside|near|in front|over
            |standing|sitting|by|in the|at the|here|there|with me)
        who(?:'s|s| is| was| are) (?:that|those) (?:man|woman|person|guy|girl|boy|kid|lady|people)
        how old is (?:that|my)
        (?:standing |sitting )?(?:next to|behind|beside|near|in front of) me
        by the door
        over there
        in the (?:red|green|blue|black|white|yellow|grey|gray|pink|orange|purple|brown) \w+
        (?:guy|man|woman|lady|girl|boy|kid|person|couple|people|bloke|fella) (?:at the (?:back|front|bar|door|end)
            |in the (?:front|back) row|in the (?:queue|crowd|audience)|with the (?:\w+ )?(?:hat|glasses|beard|bag
            |camera|phone|jacket|coat|cap|hoodie|scarf)|(?:standing|sitting|waiting) (?:by|at|near|behind|in front of
            |over) (?!you))
        the last person
        person (?:who talked|before me)
        who talked to you before
        (?:visitor|person|people|man|woman|guy|girl|boy|kid|one|someone|lady)(?: who (?:was|came|asked))? (?:before
            |after) me
        (?:last|previous|other|earlier|first|next) (?:visitors?|person|people|guests?|one)(?: \w+){{0,2}} (?:ask|asked
            |say|said|told|tell|want|wanted)
        who (?:else )?(?:has|have|was|were) (?:talked|talking|spoken|speaking) to you
        # what the visitor is: "how old am i", "what am i wearing", "what colour is my hair"
        who am i
        (?:how old|how tall|how heavy|how fat|how rich) (?:am|is|are|was|do|does) (?:i|me)
        (?:what|where|when|who|which) (?:am|was) i(?! (?:supposed|meant|going|to|saying|asking))
        (?:who|what|where|when) did i (?:come|arrive|bring|meet|park|leave|buy|eat|drink|wear)
        (?:tell|guess|know|say|see|work out|figure out|tell me) (?:how old|how tall|where|what|when) i (?:am|was|live
            |work|come from|do for a living)
        (?:what|which)(?: \w+){{0,3}} do i (?:drive|own|wear|weigh|earn|do for a living|look like|sound like)
        (?:what|how) do i (?:look|sound|weigh|do for a living)
        (?:how many|how much)(?: \w+){{0,2}} do i (?:have|own|earn|make|weigh)
        how much (?:do i|money do i) (?:weigh|earn|make|have)
        where do i (?:live|work|come from|stay|sleep)
        am i (?:\w+ )?(?:pretty|ugly|fat|thin|skinny|old|young|beautiful|handsome|attractive|cute|hot|sexy|tall|short
            |smart|clever|stupid|rich|poor|single|married|pregnant|sick|ill|gay|straight|male|female|a (?:man|woman
            |boy|girl))
        # fortune telling ("what's my horoscope") is off topic, not private
        # nor advice ("what is my best defence", "what are my rights")
        {_WH}(?: {_BEFORE_MY}){{0,3}} my(?! (?:horoscope|fortune|future|luck|stars|star sign say|best|worst|biggest
            |safest|first|next|only|options?|chances?|rights?)\b)
        (?:give|read|show|send|tell) me my
        guess (?:my|how old|where i|who i|what i)
        describe (?:me|my|what i|how i)
        (?:read|scan|analy[sz]e|recogni[sz]e|identify|see|rate|judge) my
        (?:scan|analy[sz]e|identify|see|rate|judge) me
        you (?:know|guess|remember|see|hear|have|keep|store|save|take|took|record|recorded|hold|collect|film
            |filmed) (?:\w+ )?my
        (?:know|tell|say|guess|learn|learnt|learned|find|found|see|saw|collect|store|keep|record
            |remember)(?: \w+){{0,3}} about (?:me|us)
        """
    )
    + r"\b"
)
