"""Word lists and sentence templates of the generated text probe set (`text-probe-v1`).

A template is one sentence with `{slot}` fields; a slot names a word list below or a computed value
(numbers, dates, times, money, URLs, …) filled by `workers.data.text_probe`. Each family is a domain label.
Changing anything here changes the samples: bump the dataset revision in the registry with it.
"""

from __future__ import annotations

_WORD_LISTS: dict[str, str] = {
    "colour": (
        "red|blue|green|yellow|purple|orange|black|white|pink|brown|grey|silver|gold|violet|crimson|turquoise"
    ),
    "animal": (
        "dog|cat|horse|rabbit|elephant|tiger|lion|sparrow|eagle|dolphin|shark|frog|snake|bear|wolf|"
        "fox|owl|cow|sheep|goat|mouse"
    ),
    "animals": (
        "dogs|cats|horses|rabbits|elephants|tigers|lions|sparrows|eagles|dolphins|frogs|bears|"
        "wolves|foxes|owls|cows|sheep|geese|mice"
    ),
    "city": (
        "Paris|London|Tokyo|Berlin|Madrid|Rome|Cairo|Sydney|Toronto|Lima|Mumbai|Nairobi|Oslo|Seoul|"
        "Chicago|Lisbon|Dublin|Vienna|Prague"
    ),
    "country": (
        "France|Japan|Brazil|Canada|Kenya|India|Norway|Mexico|Egypt|Australia|Germany|Spain|Italy|"
        "Peru|Chile|Vietnam|Ireland"
    ),
    "place": (
        "the library|the station|the market|the beach|the museum|the park|the hospital|the airport|"
        "the school|the bakery|the harbour|the office"
    ),
    "name": (
        "Alice|Bob|Maria|James|Aisha|Wei|Carlos|Fatima|Olga|Kenji|Priya|Liam|Emma|Noah|Sofia|Omar|"
        "Hannah|Lucas|Mei|Diego|Grace|Ivan"
    ),
    "surname": (
        "Smith|Garcia|Chen|Kowalski|Okafor|Tanaka|Müller|Rossi|Patel|Johnson|Nguyen|Silva|Novak|Brown|Khan"
    ),
    "food": (
        "bread|rice|pasta|soup|cheese|apples|bananas|chocolate|salad|noodles|pizza|tomatoes|carrots|"
        "honey|yoghurt|curry|dumplings|pancakes"
    ),
    "drink": "coffee|tea|water|orange juice|milk|lemonade|cocoa|soda",
    "meal": "breakfast|lunch|dinner|supper|brunch",
    "weather": "sunny|rainy|cloudy|windy|foggy|snowy|stormy|humid|freezing|mild",
    "weather_noun": "rain|snow|thunder|hail|sunshine|fog|wind|drizzle|frost",
    "emotion": (
        "happy|sad|angry|afraid|excited|nervous|proud|lonely|calm|surprised|disappointed|grateful|"
        "jealous|bored|hopeful"
    ),
    "sport": (
        "football|tennis|basketball|cricket|rugby|golf|swimming|cycling|volleyball|baseball|hockey|"
        "skiing|boxing|chess"
    ),
    "team": "the home team|the visitors|our club|the champions|the underdogs",
    "relative": "mother|father|sister|brother|grandmother|uncle|aunt|cousin|daughter|son|grandfather|niece",
    "body": "head|hand|knee|shoulder|back|ankle|elbow|wrist|neck|stomach",
    "vehicle": "car|bus|train|bicycle|truck|motorbike|ferry|plane|tram|taxi",
    "instrument": "piano|guitar|violin|drums|flute|trumpet|cello|harp|saxophone",
    "genre": "jazz|rock|classical music|hip hop|folk songs|opera|blues|reggae",
    "science": (
        "the atom|gravity|photosynthesis|the cell|evolution|electricity|magnetism|the molecule|"
        "the planet|the enzyme|entropy|the neutron"
    ),
    "scientist": "the chemist|the physicist|the biologist|the astronomer|the researcher",
    "garment": "coat|scarf|shirt|dress|jacket|hat|pair of boots|sweater|skirt",
    "object": (
        "the key|the book|the lamp|the phone|the bottle|the box|the letter|the ticket|the map|the umbrella"
    ),
    "verb_past": "found|lost|painted|bought|sold|opened|carried|cleaned|broke|moved|borrowed|returned",
    "adjective": "old|new|small|large|heavy|bright|quiet|strange|beautiful|broken|expensive|cheap",
    "month": "January|February|March|April|May|June|July|August|September|October|November|December",
    "weekday": "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday",
    "currency": "dollars|euros|pounds|yen|rupees|francs",
    "punct_word": "Wait|Stop|Listen|Really|Oh no|Look|Well|Hey",
    "py_name": "count|total|items|result|value|index|name|data|size|user",
    "py_func": "len|sum|max|min|sorted|print|range|abs",
    "domain": "example.com|mail.org|news.net|shop.io|school.edu|city.gov",
    "path": "about|contact|news|login|products|help|blog|search",
    "question_word": "Why|How|When|Where|What|Who",
}
"""Each list as one `|`-separated string: compact, and entries may contain spaces."""

WORDS: dict[str, tuple[str, ...]] = {slot: tuple(words.split("|")) for slot, words in _WORD_LISTS.items()}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "numbers": (
        "There are {n} students in the class and {n2} teachers.",
        "She counted {big} stars before midnight.",
        "The answer to question {n} is {n2}.",
        "Add {n} and {n2} to get the total.",
        "Room {n} is on floor {n2} of the building.",
    ),
    "colours": (
        "The {colour} car parked next to the {colour2} house.",
        "She painted the wall {colour} and the door {colour2}.",
        "His favourite colour is {colour}.",
        "A {colour} balloon floated over the {colour2} roof.",
        "Mix {colour} and {colour2} paint to make a new shade.",
    ),
    "animals": (
        "The {animal} chased the {animal2} across the field.",
        "A small {animal} slept under the tree.",
        "We saw a {animal} at the zoo yesterday.",
        "My neighbour feeds the {animal} every morning.",
        "The {animal} is faster than the {animal2}.",
    ),
    "places": (
        "She flew from {city} to {city2} last week.",
        "The museum in {city} is famous for its paintings.",
        "They moved to {country} after the war.",
        "Meet me at {place} near the river.",
        "{city} is the capital of {country}.",
    ),
    "dates": (
        "The meeting is on {weekday}, {day} {month} {year}.",
        "He was born on {month} {day}, {year}.",
        "The shop closes on {date}.",
        "Our holiday starts in {month} and ends in {month2}.",
        "The treaty was signed in {year}.",
    ),
    "times": (
        "The train leaves at {time}.",
        "We woke up at {time} and left at {time2}.",
        "The film starts at {hour} o'clock.",
        "Lunch is served between {time} and {time2}.",
        "The alarm rang at {time} on {weekday}.",
    ),
    "code": (
        "for i in range({n}): print(i)",
        "{py_name} = {py_func}({py_name2})",
        "if {py_name} > {n}: return {py_name2}",
        "def get_{py_name}(self): return self.{py_name}",
        "x = [{n}, {n2}, {n3}]; y = {py_func}(x)",
    ),
    "punctuation": (
        "{punct_word}! Did you hear that?",
        '"{punct_word}," she said, "come here."',
        "{food}, {food2}, {food3}; and, of course, {drink}.",
        "{punct_word}... I think (maybe) we are lost!",
        "Is it {adjective}? Yes - it is; no doubt about it, {name}.",
    ),
    "negation": (
        "I do not like {food} at all.",
        "He never goes to {place} on {weekday}.",
        "The {animal} is not {adjective}.",
        "Nobody {verb_past} {object} yesterday.",
        "She didn't want {drink}, and neither did he.",
    ),
    "plurals": (
        "The {animals} and the {animals2} shared the barn.",
        "Three {animals} crossed the road.",
        "We bought {n} boxes of {food}.",
        "Many children played with the {animals}.",
        "All the {animals} were asleep by {time}.",
    ),
    "names": (
        "{name} {surname} met {name2} at the party.",
        "{name} gave the book to {name2}.",
        "Dr. {surname} will see {name} now.",
        "{name} and {name2} are old friends.",
        "Ask {name} whether {name2} is coming.",
    ),
    "food": (
        "For {meal} we had {food} and {food2}.",
        "She baked {food} with a cup of {drink}.",
        "The recipe needs {n} grams of {food}.",
        "He ordered {food} and a glass of {drink}.",
        "Fresh {food} and {food2} are sold at the market.",
    ),
    "weather": (
        "Tomorrow will be {weather} with some {weather_noun}.",
        "It was {weather} and {weather2} all day.",
        "Heavy {weather_noun} closed the roads.",
        "The forecast says {weather_noun} in {city}.",
        "Bring a {garment}, it is {weather} outside.",
    ),
    "emotions": (
        "She felt {emotion} when she heard the news.",
        "He was {emotion} and a little {emotion2}.",
        "The children looked {emotion} after the game.",
        "I am so {emotion} today.",
        "They were {emotion} to see their {relative}.",
    ),
    "sports": (
        "{team} won the {sport} match {n} to {n2}.",
        "She plays {sport} every {weekday}.",
        "The {sport} final was held in {city}.",
        "He trained for {sport} for {n} years.",
        "Our {sport} coach is very strict.",
    ),
    "money": (
        "The ticket costs ${price}.",
        "He paid {n} {currency} for the {garment}.",
        "The bill came to £{price} including tax.",
        "Prices rose by {n}% this year.",
        "She saved {big} {currency} for a new {vehicle}.",
    ),
    "web": (
        "Visit https://www.{domain}/{path} for details.",
        "Send an email to {lname}@{domain} today.",
        "Contact {lname}.{lname2}@{domain} for help.",
        "The page http://{domain}/{path}/{n} is broken.",
        "Log in at www.{domain} and click {path}.",
    ),
    "questions": (
        "{question_word} did {name} go to {place}?",
        "{question_word} is the {animal} so {emotion}?",
        "Can you tell me where {place} is?",
        "Is it {weather} in {city} today?",
        "When will the {vehicle} from {city} arrive?",
    ),
    "family": (
        "My {relative} lives in {city}.",
        "Her {relative} and my {relative2} are friends.",
        "The {relative} cooked {food} for everyone.",
        "His {relative} is {n} years old.",
        "We visited our {relative} on {weekday}.",
    ),
    "body": (
        "My {body} hurts after the run.",
        "She injured her {body} playing {sport}.",
        "The doctor looked at his {body} and {body2}.",
        "Raise your {body} slowly.",
        "He broke his {body} in {month}.",
    ),
    "vehicles": (
        "The {vehicle} was late again.",
        "We took the {vehicle} to {city}.",
        "The {colour} {vehicle} stopped at the corner.",
        "She rides her {vehicle} to work.",
        "The {vehicle} and the {vehicle2} collided.",
    ),
    "music": (
        "He plays the {instrument} in a band.",
        "She listens to {genre} every evening.",
        "The {instrument} solo was beautiful.",
        "They learned {genre} on the {instrument}.",
        "The concert of {genre} starts at {time}.",
    ),
    "science": (
        "{scientist} studied {science} for years.",
        "Scientists explained {science} to the class.",
        "The theory of {science} changed physics.",
        "{scientist} measured {n} samples in the lab.",
        "We learned about {science} and {science2}.",
    ),
    "clothing": (
        "She wore a {colour} {garment} to the wedding.",
        "He lost his {garment} on the {vehicle}.",
        "This {garment} is too {adjective}.",
        "Buy a warm {garment} before winter.",
        "The {garment} cost {n} {currency}.",
    ),
}
