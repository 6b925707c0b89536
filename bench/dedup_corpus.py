"""A synthetic stream of Korean and English instruction-like texts with planted (non-)duplicates.

Every base text fills one of a few dozen templates with phrases drawn from hand-written word lists,
so template-sharing is everywhere, as in real generated data ("Write a poem about X" thousands of
times). Three kinds of items:

- base: a fresh fill of a template (its own family);
- near-duplicate: a base text edited 1-3 times the way a model rephrases itself: synonym and word
  swaps, inserted adverbs, reordered phrases, deleted words, case/punctuation changes; for Korean
  also particle changes (은/는 -> 이/가, 을/를 -> 에 대해 ...) and sentence-ending changes
  (해 주세요 -> 해 줘 -> 하시오 ...) and spacing changes. Same family as its base; always placed
  after its base in the stream;
- sibling: the same template (and Korean ending) as a base with most slots refilled: shares the
  frame, says something else. A family of its own: a planted NON-duplicate.

An item is a true duplicate iff an earlier item of the stream has the same family.
"""

from __future__ import annotations

import random
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _phrases(block: str, sep: str = " ") -> list[str]:
    """A "|"-separated word list written over several lines ("sep" joins a phrase split by a line break)."""
    return [p.strip() for p in block.replace("\n", sep).split("|") if p.strip()]


# ---------------------------------------------------------------------------------------------
# English

EN_ADJ = ["ancient", "modern", "small", "remote", "lonely", "busy", "rural", "urban", "digital", "traditional", "sustainable", "forgotten", "famous", "quiet", "noisy", "crowded", "historic", "futuristic", "local", "global", "tiny", "massive", "rare", "common", "mysterious", "friendly", "dangerous", "healthy", "expensive", "affordable", "colorful", "abandoned", "coastal", "frozen", "tropical", "volcanic", "medieval", "electric", "wooden", "secret", "public"]

EN_NOUN = _phrases("""lighthouse keeper|coral reef|bakery|subway system|public library|solar farm|honeybee
colony|chess club|mountain village|space station|river delta|night market|vegetable garden|city
park|wind turbine|fishing boat|train station|desert oasis|art museum|jazz band|recycling plant|
hospital ward|football team|street food vendor|bookshop|forest fire|glacier|robot vacuum|
electric car|rain forest|music festival|wedding ceremony|job interview|science fair|podcast|
coffee shop|farmers market|volcano|penguin colony|castle|submarine|cryptocurrency|smartphone app|
language school|yoga studio|bicycle lane|tea plantation|olive harvest|snowstorm|startup company|
family restaurant|bridge|harbor|zoo|planetarium|theater group|marathon|kindergarten|data center|
sourdough bread|vaccine|satellite|wildlife reserve|fashion show|video game|radio station|
pottery class|hiking trail|ferry|apartment building|factory|orchard|carnival|election|newspaper|
comic book|telescope|hot spring|bamboo forest|ice rink|sports stadium|cargo ship|rice field|
airport|lake|cave|pharmacy|bus route|highway|dam|skyscraper|swimming pool|greenhouse|court case|
hackathon|research lab|wind farm|nuclear plant|ocean current|thunderstorm|monastery|temple|
barbershop|flower shop|vineyard|camping trip|school trip|birthday party|online course|
water shortage|heat wave|traffic jam|housing market|minimum wage|remote work|sleep schedule|
diet plan|savings account|credit card|insurance policy|tax return|rental contract|garage sale|
charity event|volunteer program|neighborhood watch|youth orchestra|dance studio|film studio|
animation studio|toy factory|chocolate factory|ice cream truck|food truck|pizza oven|
sushi restaurant|noodle shop|tea ceremony|calligraphy class|photography club|drone delivery|
3D printer|quantum computer|solar panel|heat pump|water filter|air purifier""")

EN_FORM = _phrases("""short story|poem|blog post|product description|cover letter|speech|news article|haiku|
dialogue|limerick|tweet|movie review|travel guide|lesson plan|song|essay|fairy tale|press release|
thank-you note|marketing email|podcast outline|job advertisement|riddle|restaurant review|
FAQ entry|debate opening|diary entry|letter of complaint|product pitch|slogan""")

EN_AUDIENCE = _phrases("""young children|high school students|retired teachers|first-time parents|busy nurses|
software engineers|small business owners|foreign tourists|university freshmen|elderly neighbors|
professional athletes|amateur cooks|new employees|city council members|hospital patients|
museum visitors|online gamers|graduate students|farmers|truck drivers|art collectors|
factory workers|exchange students|single parents|nature lovers|history teachers|
startup founders|job seekers|pet owners|wedding planners""")

EN_PLACE = _phrases("""Seoul|Busan|Tokyo|Paris|a small town|the countryside|Jeju Island|New York|Berlin|
a university campus|a fishing village|the Alps|a desert city|Lagos|Mexico City|Sydney|Mumbai|
an island nation|a mountain town|Cairo|Toronto|Istanbul|Nairobi|Lima|Hanoi|Reykjavik|Buenos Aires|
Vienna|a coastal city|Singapore""")

EN_ACTIVITY = _phrases("""learning to play the guitar|training for a marathon|starting a vegetable garden|
moving to a new city|preparing for a job interview|learning a new language|saving money for a house|
planning a wedding|raising chickens|writing a first novel|building a personal website|
organizing a community cleanup|cooking for a large family|teaching a dog new tricks|
running a small bakery|studying for final exams|renovating an old kitchen|
learning to swim as an adult|opening a coffee shop|caring for an elderly parent|
traveling on a tight budget|recording a podcast|fixing a leaking faucet|quitting sugar|
managing a remote team|painting with watercolors|brewing beer at home|photographing birds|
restoring a vintage car|hosting a dinner party""")

EN_STYLE = _phrases("""simple terms|a formal tone|one short paragraph|five bullet points|plain language|
the style of a textbook|the voice of a sports commentator|a humorous way|the tone of a news anchor|
the form of a recipe|a step-by-step list|the style of a fairy tale|language a child understands|
a persuasive tone|the style of a legal contract""")

EN_CHARACTER = _phrases("""a retired astronaut|a curious cat|a shy librarian|a young detective|
an old fisherman|a talking robot|a nervous chef|a brave firefighter|a lost tourist|
a village doctor|a stubborn farmer|a teenage inventor|a sleepy dragon|a famous violinist|
a homesick student""")

EN_LANGUAGE = ["French", "Spanish", "German", "Korean", "Japanese", "Italian", "Portuguese", "Chinese", "Arabic", "Hindi"]
EN_NUM = ["three", "four", "five", "six", "seven", "eight", "ten", "3", "4", "5", "7", "10"]
EN_DURATION = ["one-week", "two-week", "30-day", "three-month", "weekend", "six-month", "one-day", "ten-day"]

# Templates: {t} and {u} are topics ("adjective noun"); other slots name their list.
EN_TEMPLATES = [
    "Write a {form} about {t} for {audience}.",
    "Explain the difference between {t} and {u} in {style}.",
    "Give me {num} tips for {activity} in {place}.",
    "Summarize what {audience} in {place} say for and against {t} in {num} sentences.",
    "What are the most common mistakes people make when {activity} near {t}?",
    "Describe how {t} could change {u} in {place} over the next {num} years.",
    "Create a {duration} plan for {activity} that suits {audience}.",
    "Compose a {form} that compares {t} with {u}.",
    "List {num} questions a journalist might ask about {t} in {place}.",
    "How would you explain {t} to {audience} using {style}?",
    "Suggest {num} names for a business that specializes in {t} for {audience}.",
    "Rewrite this sentence about {t} and {u} so that it sounds like {character} wrote it.",
    "Draft an email to {audience} inviting them to visit {t} in {place}.",
    "Why is {t} important for {audience} living in {place}?",
    "Outline the steps needed for {activity} with the help of {t}.",
    "Generate a multiple-choice question about {t} suitable for {audience}.",
    "Translate a short paragraph about {t} into {language} for {audience}.",
    "Recommend {num} books about {t} for {audience} who enjoy {activity}.",
    "Write a {form} in which {character} discovers {t} in {place}.",
    "Analyze the pros and cons of {activity} for people who live near {t}.",
    "Plan a {duration} trip to {place} focused on {t} and {u}.",
    "Describe {t} in {place} from the point of view of {character}.",
    "Convert this paragraph about {t} into {style} for {audience}.",
    "What would happen to {audience} if {t} suddenly disappeared from {place}?",
]

# An optional opening clause with slots of its own ({v} topic, {w} place, {z} audience): the
# same task asked for different reasons, which is how real requests differ.
EN_CLAUSES = [
    "For a presentation in {w}", "As part of a report on {v}", "Before my trip to {w}",
    "To help {z} prepare for next week", "For a newsletter about {v}", "While thinking about {v}",
    "For a class on {v}", "After a long discussion with {z}", "For a contest organized in {w}",
    "To start a conversation about {v}", "For a workshop with {z}", "In preparation for a visit to {w}",
    "For a blog that covers {v}", "Since {z} asked me about it", "For a podcast episode recorded in {w}",
]

EN_SYNONYMS = [
    ("Write", "Compose"), ("Explain", "Describe"), ("Give me", "Provide"), ("tips", "suggestions"),
    ("about", "on"), ("common", "frequent"), ("important", "essential"), ("Create", "Make"),
    ("List", "Name"), ("Suggest", "Propose"), ("steps", "stages"), ("questions", "queries"),
    ("Draft", "Write"), ("Summarize", "Sum up"), ("Recommend", "Suggest"), ("Plan", "Organize"),
    ("Generate", "Create"), ("Analyze", "Evaluate"), ("inviting", "asking"), ("suitable for", "appropriate for"),
    ("difference", "distinction"), ("main", "key"), ("mistakes", "errors"), ("trip", "journey"),
    ("specializes in", "focuses on"), ("could change", "might transform"), ("needed", "required"),
]
EN_INSERTIONS = ["please", "briefly", "in detail", "clearly", "quickly", "carefully", "really", "short"]
EN_DROPPABLE = {"a", "an", "the", "most", "main", "short", "new"}


EN_GROUP_ADJ = ["curious", "busy", "retired", "young", "experienced", "nervous", "ambitious", "tired", "enthusiastic", "skeptical", "shy", "creative", "local", "international", "hardworking"]
EN_ROLE_ADJ = ["retired", "curious", "shy", "young", "old", "talking", "nervous", "brave", "lost", "stubborn", "sleepy", "famous", "homesick", "cheerful", "grumpy"]
EN_ROLE = _phrases("""astronaut|cat|librarian|detective|fisherman|robot|chef|firefighter|tourist|doctor|farmer|
inventor|dragon|violinist|student|pilot|gardener|painter|taxi driver|grandmother""")
EN_FORM_ADJ = ["short ", "funny ", "formal ", "sad ", "rhyming ", "", "", ""]
EN_PLACE_PREFIX = ["the outskirts of ", "downtown ", "a village near ", "the old town of ", "", "", ""]
EN_ACTIVITY_SUFFIX = [" on a budget", " with friends", " after work", " in winter", " for the first time", "", "", ""]
EN_PREPOSITIONS = ["near", "behind", "inside", "next to"]


def _an(phrase: str, article: str) -> str:
    if article == "a" and phrase[0] in "aeiou":
        article = "an"
    return f"{article} {phrase}" if article else phrase


def _topic(rng: random.Random) -> str:
    topic = _an(f"{rng.choice(EN_ADJ)} {rng.choice(EN_NOUN)}", rng.choice(["the", "a", ""]))
    if rng.random() < 0.4:
        topic += f" {rng.choice(EN_PREPOSITIONS)} the {rng.choice(EN_NOUN)}"
    return topic


def _en_slots(rng: random.Random) -> dict[str, str]:
    place = rng.choice(EN_PLACE)
    if place[0].isupper():
        place = rng.choice(EN_PLACE_PREFIX) + place
    audience = rng.choice(EN_AUDIENCE)
    if rng.random() < 0.6:
        audience = f"{rng.choice(EN_GROUP_ADJ)} {audience}"
    return {
        "t": _topic(rng), "u": _topic(rng), "form": rng.choice(EN_FORM_ADJ) + rng.choice(EN_FORM),
        "audience": audience, "place": place,
        "activity": rng.choice(EN_ACTIVITY) + rng.choice(EN_ACTIVITY_SUFFIX), "style": rng.choice(EN_STYLE),
        "character": _an(f"{rng.choice(EN_ROLE_ADJ)} {rng.choice(EN_ROLE)}", "a"),
        "language": rng.choice(EN_LANGUAGE), "num": rng.choice(EN_NUM), "duration": rng.choice(EN_DURATION),
        "v": _topic(rng), "w": rng.choice(EN_PLACE), "z": rng.choice(EN_AUDIENCE),
        "clause": rng.choice(EN_CLAUSES) if rng.random() < CLAUSE_SHARE else "",
    }


def _en_perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    op = rng.choice(["synonym", "insert", "reorder", "delete", "surface", "swap"])
    if op == "synonym":
        options = [(a, b) for a, b in EN_SYNONYMS if re.search(rf"\b{re.escape(a)}\b", text)]
        options += [(b, a) for a, b in EN_SYNONYMS if re.search(rf"\b{re.escape(b)}\b", text)]
        if options:
            a, b = rng.choice(options)
            return re.sub(rf"\b{re.escape(a)}\b", b, text, count=1)
        op = "insert"
    if op == "insert":
        w = rng.choice(EN_INSERTIONS)
        if w == "please":
            return "Please " + text[0].lower() + text[1:]
        i = rng.randrange(1, len(words))
        return " ".join(words[:i] + [w] + words[i:])
    if op == "reorder":
        # Move a trailing "for/in/to ..." phrase to the front, as rephrasings often do.
        m = re.search(r" (for|in|to|near|with) ([^.?!]+)([.?!])$", text)
        if m:
            head = text[: m.start()]
            return f"{m.group(1).capitalize()} {m.group(2)}, {head[0].lower()}{head[1:]}{m.group(3)}"
        op = "swap"
    if op == "swap":
        i = rng.randrange(0, len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if op == "delete":
        idx = [i for i, w in enumerate(words) if w.lower() in EN_DROPPABLE]
        if idx:
            del words[rng.choice(idx)]
            return " ".join(words)
    # surface: case and punctuation only
    choice = rng.randrange(3)
    if choice == 0:
        return text.lower()
    if choice == 1:
        return text.rstrip(".?!") + rng.choice(["!", "", " ?", "..."])
    return text.replace(",", "") + " "


# ---------------------------------------------------------------------------------------------
# Korean

KO_ADJ = ["오래된", "작은", "새로운", "조용한", "시끄러운", "유명한", "외딴", "전통적인", "친환경적인", "위험한", "아름다운", "복잡한", "신비로운", "평범한", "거대한", "낡은", "현대적인", "한적한", "붐비는", "따뜻한", "차가운", "유행하는", "잊혀진", "숨겨진", "건강한", "저렴한", "비싼", "화려한", "소박한", "특별한", "이상한", "즐거운", "슬픈", "용감한", "똑똑한", "부지런한", "게으른", "낯선", "친숙한"]

KO_NOUN = _phrases("""등대지기|산호초|빵집|지하철|도서관|태양광 발전소|꿀벌|바둑 동아리|산골 마을|우주 정거장|
강 하구|야시장|텃밭|도시 공원|풍력 발전기|고깃배|기차역|사막|미술관|재즈 밴드|재활용 센터|병원|
축구팀|길거리 음식|서점|산불|빙하|로봇 청소기|전기차|열대 우림|음악 축제|결혼식|면접|과학 박람회|
팟캐스트|카페|농산물 시장|화산|펭귄|성|잠수함|암호화폐|스마트폰 앱|어학원|요가원|자전거 도로|
차 농장|올리브 수확|눈보라|스타트업|가족 식당|다리|항구|동물원|천문대|극단|마라톤|유치원|데이터 센터|
김치찌개|백신|인공위성|야생 동물 보호구역|패션쇼|비디오 게임|라디오 방송국|도자기 교실|등산로|
여객선|아파트|공장|과수원|축제|선거|신문|만화책|망원경|온천|대나무 숲|스케이트장|야구장|화물선|
논|공항|호수|동굴|약국|버스 노선|고속도로|댐|고층 빌딩|수영장|온실|재판|해커톤|연구소|원자력 발전소|
해류|천둥번개|절|이발소|꽃집|포도밭|캠핑|수학여행|생일 파티|온라인 강의|물 부족|폭염|교통 체증|
부동산 시장|최저 임금|재택근무|수면 습관|식단|적금|신용카드|보험|연말정산|전세 계약|중고 거래|
자선 행사|봉사 활동|청소년 오케스트라|무용 학원|영화 촬영장|애니메이션|장난감 공장|초콜릿 공장|
푸드 트럭|떡볶이 가게|국밥집|다도|서예 교실|사진 동아리|드론 배송|3D 프린터|양자 컴퓨터|태양광 패널|
정수기|공기청정기|한옥 마을|전통 시장|고궁|독립 서점|분식집|편의점|노래방|찜질방""", sep="")

KO_FORM = _phrases("""짧은 이야기|시|블로그 글|제품 설명|자기소개서|연설문|뉴스 기사|동화|대화문|광고 문구|일기|
영화 평론|여행 안내문|수업 계획서|노래 가사|수필|보도 자료|감사 편지|홍보 이메일|채용 공고|수수께끼|
식당 후기|토론 발표문|항의 편지|발표 대본""", sep="")

KO_AUDIENCE = _phrases("""초등학생|고등학생|은퇴한 교사|초보 부모|간호사|개발자|자영업자|외국인 관광객|대학 신입생|
어르신|운동선수|요리 초보|신입 사원|시의원|환자|박물관 관람객|게이머|대학원생|농부|트럭 운전사|
미술 수집가|공장 노동자|교환 학생|한부모 가정|자연 애호가|역사 선생님|창업자|취업 준비생|반려인|
웨딩 플래너""", sep="")

KO_PLACE = _phrases("""서울|부산|제주도|대구|광주|인천|강릉|전주|경주|여수|시골 마을|대학 캠퍼스|어촌|산골|신도시|
도쿄|파리|뉴욕|베를린|하노이|방콕|런던|시드니|울릉도|속초|춘천|목포|안동|통영|세종""", sep="")

KO_ACTIVITY = _phrases("""기타 배우기|마라톤 준비|텃밭 가꾸기|이사 준비|면접 준비|외국어 공부|내 집 마련|결혼 준비|
닭 키우기|첫 소설 쓰기|개인 웹사이트 만들기|동네 청소|대가족 요리|강아지 훈련|작은 빵집 운영|
기말고사 공부|부엌 리모델링|성인 수영 배우기|카페 창업|부모님 돌봄|저예산 여행|팟캐스트 녹음|
수도꼭지 수리|설탕 끊기|원격 팀 관리|수채화 그리기|맥주 만들기|새 사진 찍기|자동차 복원|저녁 모임 준비""", sep="")

KO_STYLE = _phrases("""쉬운 말로|격식 있는 말투로|한 문단으로|다섯 줄로|교과서처럼|스포츠 중계처럼|재미있게|
뉴스 앵커처럼|요리법 형식으로|단계별로|동화처럼|아이도 알아듣게|설득력 있게|계약서 문체로|시처럼""", sep="")

KO_CHARACTER = _phrases("""은퇴한 우주비행사|호기심 많은 고양이|수줍은 사서|어린 탐정|늙은 어부|말하는 로봇|긴장한 요리사|
용감한 소방관|길 잃은 관광객|시골 의사|고집 센 농부|십대 발명가|졸린 용|유명한 바이올리니스트|
향수병에 걸린 유학생""", sep="")

KO_NUM = ["세 가지", "네 가지", "다섯 가지", "여섯 가지", "일곱 가지", "열 가지", "3가지", "5가지", "7가지", "10가지"]
KO_PERIOD = ["일주일", "2주", "한 달", "석 달", "주말", "반년", "하루", "열흘"]


def _has_batchim(word: str) -> bool:
    c = word[-1]
    if "가" <= c <= "힣":
        return (ord(c) - 0xAC00) % 28 != 0
    return c in "013678"  # 영, 일, 삼, 육, 칠, 팔 end in a consonant


def josa(word: str, pair: str) -> str:
    """word + the right form of a particle pair such as "은/는", "이/가", "을/를", "과/와", "으로/로"."""
    with_b, without_b = pair.split("/")
    if pair == "으로/로" and "가" <= word[-1] <= "힣" and (ord(word[-1]) - 0xAC00) % 28 == 8:
        return word + "로"  # ㄹ batchim takes 로
    return word + (with_b if _has_batchim(word) else without_b)


# Templates: a body with {slot} and {slot:josa} markers, and the interchangeable sentence endings.
KO_TEMPLATES: list[tuple[str, list[str]]] = [
    ("{audience:을/를} 위해 {t}에 관한 {form:을/를}", ["써 주세요.", "써 줘.", "작성해 주세요.", "써 주십시오.", "작성하시오."]),
    ("{t:과/와} {u}의 차이점을 {style}", ["설명해 주세요.", "설명해 줘.", "설명하시오.", "설명해 주시겠어요?", "알려 주세요."]),
    ("{audience:이/가} {place}에서 {activity:을/를} 할 때 도움이 되는 팁을 {num}", ["알려 주세요.", "알려 줘.", "알려 주십시오.", "추천해 주세요.", "정리해 주세요."]),
    ("{place}에 사는 {audience}의 {t}에 대한 찬성과 반대 의견을 {num}로", ["요약해 주세요.", "요약해 줘.", "정리해 주세요.", "요약하시오.", "요약해 주실래요?"]),
    ("{place}의 {t} 근처에서 {activity:을/를} 할 때 사람들이 흔히 하는 실수는", ["무엇인가요?", "뭐야?", "무엇입니까?", "뭘까요?", "어떤 것이 있나요?"]),
    ("{t:이/가} 앞으로 {place}의 {u:을/를} 어떻게 바꿀지", ["설명해 주세요.", "예측해 주세요.", "설명해 줘.", "이야기해 주세요.", "서술하시오."]),
    ("{audience}에게 맞는 {period} {activity} 계획을", ["세워 주세요.", "짜 줘.", "만들어 주세요.", "세워 주십시오.", "작성해 주세요."]),
    ("{t:과/와} {u:을/를} 비교하는 {form:을/를}", ["써 주세요.", "작성해 줘.", "써 주십시오.", "작성하시오.", "만들어 주세요."]),
    ("{audience:을/를} 취재하는 기자가 {place}의 {t}에 대해 물어볼 만한 질문을 {num}", ["만들어 주세요.", "뽑아 줘.", "제시해 주세요.", "작성하시오.", "알려 주세요."]),
    ("{audience}에게 {t:을/를} {style}", ["설명해 주세요.", "설명해 줘.", "설명하시오.", "소개해 주세요.", "알려 주세요."]),
    ("{audience:을/를} 위한 {t} 전문 가게 이름을 {num}", ["추천해 주세요.", "지어 줘.", "제안해 주세요.", "지어 주십시오.", "추천하시오."]),
    ("{t}에 관한 이 문장을 {character:이/가} 쓴 것처럼", ["바꿔 주세요.", "바꿔 줘.", "고쳐 써 주세요.", "다시 써 주십시오.", "바꾸시오."]),
    ("{audience:을/를} {place}의 {t}에 초대하는 이메일을", ["써 주세요.", "작성해 줘.", "써 주십시오.", "작성하시오.", "작성해 주세요."]),
    ("{place}에 사는 {audience}에게 {t:이/가} 중요한 이유는", ["무엇인가요?", "뭐야?", "무엇입니까?", "무엇일까요?", "뭔가요?"]),
    ("{t:을/를} 활용해서 {activity:을/를} 하는 단계를", ["정리해 주세요.", "알려 줘.", "설명해 주세요.", "나열하시오.", "알려 주세요."]),
    ("{place}의 {audience}에게 알맞은 {t} 관련 객관식 문제를 {num}", ["만들어 주세요.", "만들어 줘.", "출제해 주세요.", "만드시오.", "내 주세요."]),
    ("{activity:을/를} 좋아하는 {audience}에게 {t}에 관한 책을 {num}", ["추천해 주세요.", "추천해 줘.", "골라 주세요.", "추천하시오.", "소개해 주세요."]),
    ("{character:이/가} {place}에서 {t:을/를} 발견하는 {form:을/를}", ["써 주세요.", "써 줘.", "지어 주세요.", "써 주십시오.", "창작하시오."]),
    ("{t} 근처에 사는 사람들에게 {activity}의 장단점을", ["분석해 주세요.", "분석해 줘.", "알려 주세요.", "분석하시오.", "정리해 주세요."]),
    ("{t:과/와} {u}에 초점을 맞춘 {place} {period} 여행 계획을", ["짜 주세요.", "짜 줘.", "세워 주세요.", "만들어 주십시오.", "추천해 주세요."]),
    ("{place}에 사는 {character}의 입장에서 {t:을/를}", ["묘사해 주세요.", "묘사해 줘.", "설명해 주세요.", "묘사하시오.", "그려 내 주세요."]),
    ("{t:과/와} {u}에 관한 이 문단을 {audience:을/를} 위해 {style}", ["바꿔 주세요.", "바꿔 줘.", "다시 써 주세요.", "고쳐 주십시오.", "바꾸시오."]),
    ("{place}에서 {t:이/가} 갑자기 사라진다면 {audience}에게 어떤 일이", ["일어날까요?", "생길까?", "벌어질까요?", "일어나겠습니까?", "생길지 설명해 주세요."]),
    ("{t}에 대한 {audience}의 궁금증을 풀어 주는 {form:을/를}", ["써 주세요.", "써 줘.", "작성해 주세요.", "작성하시오.", "만들어 주세요."]),
]

KO_CLAUSES = [
    "{w}에서 있을 발표를 위해", "{v}에 관한 보고서에 넣을 수 있게", "{w} 여행을 앞두고",
    "{z}의 다음 주 준비를 돕기 위해", "{v}에 대한 소식지에 싣기 위해", "{v}에 대해 고민하던 중에",
    "{v} 수업에서 쓸 수 있게", "{z:과/와} 긴 토론을 한 뒤에", "{w}에서 열리는 대회를 위해",
    "{v}에 대한 대화를 시작하려고", "{z:과/와} 함께하는 워크숍을 위해", "{w} 방문을 준비하면서",
    "{v:을/를} 다루는 블로그를 위해", "{z:이/가} 물어봐서", "{w}에서 녹음하는 팟캐스트를 위해",
]
CLAUSE_SHARE = 0.7

KO_PARTICLE_SWAPS = [
    (r"(\S)은 ", r"\1이 "), (r"(\S)는 ", r"\1가 "), (r"(\S)이 ", r"\1은 "), (r"(\S)가 ", r"\1는 "),
    (r"(\S)을 ", r"\1에 대해 "), (r"(\S)를 ", r"\1에 대해 "), (r"에 관한 ", "에 대한 "), (r"에 대한 ", "에 관한 "),
    (r"(\S)의 ", r"\1 "), (r"에서 ", "에 "), (r"에게 ", "한테 "), (r"한테 ", "에게 "),
]
KO_INSERTIONS = ["간단히", "자세히", "쉽게", "꼭", "좀", "한번", "친절하게", "구체적으로"]
KO_PREFIXES = ["혹시 ", "부탁인데 ", "지금 ", "저기요, "]


def _fill_ko(body: str, slots: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, _, pair = m.group(1).partition(":")
        return josa(slots[name], pair) if pair else slots[name]

    return re.sub(r"\{([a-z]+(?::[^}]+)?)\}", sub, body)


KO_GROUP_ADJ = _phrases("""바쁜|호기심 많은|은퇴한|젊은|나이 든|초보|지친|열정적인|수줍은|창의적인|외국인|동네|경험 많은""")
KO_ROLE_ADJ = _phrases("""은퇴한|호기심 많은|수줍은|어린|늙은|말하는|긴장한|용감한|길 잃은|고집 센|졸린|유명한|
향수병에 걸린|명랑한|까칠한""")
KO_ROLE = _phrases("""우주비행사|고양이|사서|탐정|어부|로봇|요리사|소방관|관광객|의사|농부|발명가|용|
바이올리니스트|유학생|조종사|정원사|화가|택시 기사|할머니""")
KO_TOPIC_LINK = ["옆", "근처의", "안의", "뒤편의"]
KO_PLACE_SUFFIX = [" 외곽", " 구도심", " 근교", "", "", ""]
KO_ACTIVITY_PREFIX = ["주말마다 ", "퇴근 후 ", "친구와 함께 ", "적은 예산으로 ", "처음으로 ", "", "", ""]
KO_FORM_ADJ = ["재미있는 ", "격식 있는 ", "슬픈 ", "운율이 있는 ", "", "", ""]


def _ko_topic(rng: random.Random) -> str:
    topic = f"{rng.choice(KO_ADJ)} {rng.choice(KO_NOUN)}"
    if rng.random() < 0.4:
        topic = f"{rng.choice(KO_NOUN)} {rng.choice(KO_TOPIC_LINK)} {topic}"
    return topic


def _ko_slots(rng: random.Random) -> dict[str, str]:
    audience = rng.choice(KO_AUDIENCE)
    if rng.random() < 0.6:
        audience = f"{rng.choice(KO_GROUP_ADJ)} {audience}"
    return {
        "t": _ko_topic(rng), "u": _ko_topic(rng), "form": rng.choice(KO_FORM_ADJ) + rng.choice(KO_FORM),
        "audience": audience, "place": rng.choice(KO_PLACE) + rng.choice(KO_PLACE_SUFFIX),
        "activity": rng.choice(KO_ACTIVITY_PREFIX) + rng.choice(KO_ACTIVITY), "style": rng.choice(KO_STYLE),
        "character": f"{rng.choice(KO_ROLE_ADJ)} {rng.choice(KO_ROLE)}",
        "num": rng.choice(KO_NUM), "period": rng.choice(KO_PERIOD),
        "v": _ko_topic(rng), "w": rng.choice(KO_PLACE), "z": rng.choice(KO_AUDIENCE),
        "clause": rng.choice(KO_CLAUSES) if rng.random() < CLAUSE_SHARE else "",
    }


def _ko_perturb(body: str, ending: str, endings: list[str], rng: random.Random) -> tuple[str, str]:
    op = rng.choice(["particle", "ending", "insert", "reorder", "spacing", "particle", "ending"])
    if op == "particle":
        options = [(p, r) for p, r in KO_PARTICLE_SWAPS if re.search(p, body)]
        if options:
            p, r = rng.choice(options)
            matches = list(re.finditer(p, body))
            m = rng.choice(matches)
            return body[: m.start()] + m.expand(r) + body[m.end():], ending
        op = "ending"
    if op == "ending":
        others = [e for e in endings if e != ending]
        return body, rng.choice(others)
    if op == "insert":
        if rng.random() < 0.3:
            return rng.choice(KO_PREFIXES) + body, ending
        return f"{body} {rng.choice(KO_INSERTIONS)}", ending
    words = body.split(" ")
    if op == "reorder" and len(words) >= 3:
        i = rng.randrange(0, len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words), ending
    # spacing: Korean spacing is famously inconsistent; drop one space or split a word.
    if len(words) >= 2 and rng.random() < 0.6:
        i = rng.randrange(0, len(words) - 1)
        return " ".join(words[:i] + [words[i] + words[i + 1]] + words[i + 2:]), ending
    return body, ending.replace(" ", "", 1) if " " in ending else ending + " "


# ---------------------------------------------------------------------------------------------
# Items


@dataclass
class Item:
    id: str
    text: str
    lang: str  # "ko" | "en"
    family: int
    kind: str  # "base" | "near_dup" | "sibling"
    source: int = -1  # for near_dup and sibling: the family of the base it was made from


@dataclass
class _Base:
    lang: str
    template: int
    slots: dict[str, str]
    ending: str
    text: str
    body: str


def _fresh_slots(make: Callable[[random.Random], dict[str, str]], rng: random.Random,
                 unlike: dict[str, str] | None) -> dict[str, str]:
    slots = make(rng)
    if unlike is not None:
        # A sibling differs from its base in every slot (a small list would often repeat one).
        for name, value in unlike.items():
            while slots[name] == value and name != "clause":
                slots[name] = make(rng)[name]
    return slots


def _render(lang: str, template: int, slots: dict[str, str], ending: str) -> tuple[str, str]:
    """(text, body): the filled template with its opening clause (if any); body is the Korean
    text without its sentence ending (the part particle edits work on)."""
    if lang == "en":
        text = EN_TEMPLATES[template].format(**slots)
        if slots["clause"]:
            text = f"{slots['clause'].format(**slots)}, {text[0].lower()}{text[1:]}"
        return text, text
    body = _fill_ko(KO_TEMPLATES[template][0], slots)
    if slots["clause"]:
        body = f"{_fill_ko(slots['clause'], slots)} {body}"
    return f"{body} {ending}", body


def _make_base(lang: str, rng: random.Random, template: int | None = None, ending: str | None = None,
               unlike: dict[str, str] | None = None) -> _Base:
    """A fresh fill of a template; a sibling passes its base's template, Korean ending and slots
    (`unlike`) and gets every slot refilled: the same frame, different content."""
    templates = EN_TEMPLATES if lang == "en" else KO_TEMPLATES
    t = rng.randrange(len(templates)) if template is None else template
    slots = _fresh_slots(_en_slots if lang == "en" else _ko_slots, rng, unlike)
    if unlike is not None:
        slots["clause"] = unlike["clause"]  # a sibling keeps the whole frame, clause included
    end = "" if lang == "en" else (ending if ending is not None else rng.choice(KO_TEMPLATES[t][1]))
    text, body = _render(lang, t, slots, end)
    return _Base(lang, t, slots, end, text, body)


def _near_dup(base: _Base, rng: random.Random, edits: int | None = None) -> str:
    """`base` after 1-3 edits (or `edits` of them)."""
    if edits is None:
        edits = rng.choices([1, 2, 3], weights=[0.45, 0.4, 0.15])[0]
    if base.lang == "en":
        text = base.text
        for _ in range(edits):
            text = _en_perturb(text, rng)
        return text
    body, ending = base.body, base.ending
    endings = KO_TEMPLATES[base.template][1]
    for _ in range(edits):
        body, ending = _ko_perturb(body, ending, endings, rng)
    return f"{body} {ending}"


# ---------------------------------------------------------------------------------------------
# The reference that keeps the non-duplicates honest

# A trailing particle (longest first), split off a Korean word into a token of its own: the
# reference then counts 의, 에게, 를 as English counts "of", "for", "the".
# (은/는/이/가 stay on their word: they also end adjectives and verbs, 작은, 사는, which are no
# particles.)
_KO_PARTICLE = re.compile(r"(?<=\w)(에서|에게|으로|한테|을|를|의|에|와|과|로|도)(?=\s|$)")
REFERENCE_MAX_F1 = 0.7


def reference_tokens(text: str, lang: str) -> list[str]:
    """Word tokens for the reference overlap: rouge-score's for English (lowercase [a-z0-9]+);
    for Korean (of which rouge-score keeps nothing), whitespace words with the trailing particle
    split off."""
    if lang == "en":
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return _KO_PARTICLE.sub(r" \1", re.sub(r"[^\w\s]+", " ", text)).split()


class _ReferenceIndex:
    """Refuses a text whose unigram F1 with an earlier accepted text of its template is > 0.7.

    Unigram F1 counts repeated words (each occurrence is its own token, "the#2"), so it is at least
    the ROUGE-L F1 of the same pair: an accepted English text is one Alpaca's ROUGE-L > 0.7 rule
    keeps. This is what makes the pool's texts non-duplicates by a measure independent of ours.
    """

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._postings: dict[tuple[str, int], dict[int, array]] = {}
        self._lengths: dict[tuple[str, int], np.ndarray] = {}  # token count per row, grown by doubling
        self._rows: dict[tuple[str, int], int] = {}

    def _ids(self, tokens: list[str]) -> list[int]:
        seen: dict[str, int] = {}
        ids = []
        for t in tokens:
            seen[t] = seen.get(t, 0) + 1
            ids.append(self._vocab.setdefault(f"{t}#{seen[t]}", len(self._vocab)))
        return ids

    def try_add(self, text: str, lang: str, template: int) -> bool:
        key = (lang, template)
        ids = self._ids(reference_tokens(text, lang))
        postings = self._postings.setdefault(key, {})
        lengths = self._lengths.setdefault(key, np.zeros(1024, dtype=np.int32))
        rows = self._rows.get(key, 0)
        if rows:
            # A template's frame words are in every row: count them once instead of per row.
            everywhere = 0
            hits = []
            for i in ids:
                p = postings.get(i)
                if p is None:
                    continue
                if len(p) == rows:
                    everywhere += 1
                else:
                    hits.append(np.frombuffer(p, dtype=np.int32))
            overlap = everywhere + (np.bincount(np.concatenate(hits), minlength=rows) if hits else 0)
            del hits  # release the views: the arrays grow below
            f1 = 2 * overlap / (len(ids) + lengths[:rows])
            if np.max(f1) > REFERENCE_MAX_F1:
                return False
        for i in ids:
            postings.setdefault(i, array("i")).append(rows)
        if rows == len(lengths):
            lengths = self._lengths[key] = np.concatenate((lengths, np.zeros_like(lengths)))
        lengths[rows] = len(ids)
        self._rows[key] = rows + 1
        return True


# ---------------------------------------------------------------------------------------------
# The stream


def make_stream(n: int, seed: int = 0, near_dup_share: float = 0.2, sibling_share: float = 0.15,
                korean_share: float = 0.5) -> list[Item]:
    """`n` items: about `near_dup_share` planted near-duplicates, `sibling_share` planted
    template-sharing non-duplicates, the rest fresh bases.

    Bases and siblings form the pool of non-duplicates: each is accepted only if no earlier pool
    text of its template overlaps it by unigram F1 > 0.7 (`_ReferenceIndex`). Near-duplicates are
    made from pool texts and placed at a random later point of the stream.
    """
    rng = random.Random(seed)
    n_dup = int(n * near_dup_share)
    n_pool = n - n_dup
    sibling_p = sibling_share / (1.0 - near_dup_share)
    reference = _ReferenceIndex()
    pool: list[tuple[_Base, Item]] = []
    seen_texts: set[str] = set()
    n_sib = 0
    while len(pool) < n_pool:
        if pool and n_sib < sibling_p * len(pool):
            source, source_item = pool[rng.randrange(len(pool))]
            b = _make_base(source.lang, rng, template=source.template, ending=source.ending or None,
                           unlike=source.slots)
            kind, src = "sibling", source_item.family
        else:
            b = _make_base("ko" if rng.random() < korean_share else "en", rng)
            kind, src = "base", -1
        if b.text in seen_texts or not reference.try_add(b.text, b.lang, b.template):
            continue
        seen_texts.add(b.text)
        n_sib += kind == "sibling"
        pool.append((b, Item("", b.text, b.lang, len(pool), kind, source=src)))
    # Near-duplicates: edits of a random pool text, placed somewhere after it.
    after: list[list[Item]] = [[] for _ in range(n_pool)]
    for _ in range(n_dup):
        i = rng.randrange(n_pool)
        b, item = pool[i]
        after[rng.randrange(i, n_pool)].append(
            Item("", _near_dup(b, rng), b.lang, item.family, "near_dup", source=item.family))
    items: list[Item] = []
    for (_, item), later in zip(pool, after):
        items.append(item)
        rng.shuffle(later)
        items.extend(later)
    for k, item in enumerate(items):
        item.id = f"{item.lang}-{k}"
    return items


def expected_duplicates(items: list[Item]) -> list[bool]:
    """True where an earlier item has the same family (the truth the benchmark scores against)."""
    seen: set[int] = set()
    out = []
    for item in items:
        out.append(item.family in seen)
        seen.add(item.family)
    return out


# ---------------------------------------------------------------------------------------------
# Calibration pairs: graded similarity, for where a threshold sits against Alpaca's rule


def _template_slots(base: _Base) -> list[str]:
    template = EN_TEMPLATES[base.template] if base.lang == "en" else KO_TEMPLATES[base.template][0]
    template += base.slots["clause"]
    return sorted({m.split(":")[0] for m in re.findall(r"\{([a-z]+(?::[^}]+)?)\}", template)})


def _refill(base: _Base, rng: random.Random, refill: int) -> str:
    """`base` with `refill` of its template's slots given new values, the others kept."""
    fresh = _en_slots(rng) if base.lang == "en" else _ko_slots(rng)
    slots = dict(base.slots)
    for name in rng.sample(_template_slots(base), refill):
        slots[name] = fresh[name]
    return _render(base.lang, base.template, slots, base.ending)[0]


def calibration_pairs(n: int, lang: str = "en", seed: int = 0) -> list[tuple[str, str, str]]:
    """`n` (a, b, how) pairs spanning the whole range from rewording to unrelated: b is `a` after
    1-8 edits, or `a`'s template with 1..all of its slots refilled, or another text entirely."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        base = _make_base(lang, rng)
        roll = rng.random()
        if roll < 0.45:
            edits = rng.randint(1, 8)
            pairs.append((base.text, _near_dup(base, rng, edits), f"edits={edits}"))
        elif roll < 0.9:
            refill = rng.randint(1, len(_template_slots(base)))
            pairs.append((base.text, _refill(base, rng, refill), f"refilled={refill}"))
        else:
            pairs.append((base.text, _make_base(lang, rng).text, "unrelated"))
    return pairs

