"""Vocabulary for the simulator's pseudo-text (English and Korean).

The lists are long enough that sentences built from a template and four or five slot words
rarely repeat (millions of combinations), so downstream dedup keeps most simulated examples.
"""

from __future__ import annotations

EN_NOUNS: tuple[str, ...] = tuple(dict.fromkeys(
    """
    river garden market library bridge harbor village forest engine network battery satellite
    museum hospital kitchen recipe budget contract festival orchestra telescope microscope
    volcano glacier desert island factory workshop classroom laboratory algorithm database
    sensor protocol compiler spreadsheet newsletter podcast interview museum archive harvest
    climate economy habit memory language grammar vocabulary poem novel essay letter speech
    debate election policy treaty currency mortgage insurance pension startup supply chain
    vaccine diet exercise sleep routine schedule deadline meeting project strategy campaign
    brand customer product prototype experiment hypothesis theory equation fraction triangle
    planet comet ocean current wetland species ecosystem pollinator seed soil fertilizer
    irrigation drought flood earthquake storm forecast temperature pressure signal antenna
    camera lens painting sculpture melody rhythm lyric dance stadium tournament coach athlete
    passport airport railway subway bicycle highway tunnel lighthouse compass map journey
    friendship family neighbor community volunteer charity donation festival tradition ritual
    holiday ceremony costume fabric pattern tool hammer ladder window roof foundation
    blueprint permit license regulation audit invoice receipt warehouse inventory shipment
    courier bakery pharmacy clinic therapy patient doctor nurse teacher student parent
    mentor apprentice scientist engineer farmer merchant author editor reader audience
    password firewall backup server browser keyboard screen robot drone tractor harvester
    """.split()
))

EN_ADJECTIVES: tuple[str, ...] = tuple(
    """
    quiet bright ancient modern rural urban local global careful rapid gradual sustainable
    fragile durable efficient expensive affordable complex simple hidden visible digital
    manual seasonal annual daily remote nearby coastal northern southern practical creative
    reliable uncertain balanced narrow broad shallow deep early late public private shared
    personal historical scientific medical financial legal cultural social economic
    environmental educational technical experimental traditional innovative flexible strict
    gentle noisy colorful minimal generous curious patient ambitious humble clever steady
    """.split()
)

# Base forms; `third_person` adds the -s/-es/-ies ending.
EN_VERBS: tuple[str, ...] = tuple(
    """
    improve support shape reduce increase affect influence change explain connect protect
    create define reveal challenge strengthen balance guide limit measure organize transform
    encourage simplify clarify reflect highlight drive enable extend follow inspire predict
    replace test track build reach carry teach match mix fix push compare describe review
    """.split()
)

EN_ADVERBS: tuple[str, ...] = tuple(
    """
    quickly slowly carefully steadily rarely often quietly clearly gradually directly
    indirectly deeply naturally efficiently reliably surprisingly consistently openly
    """.split()
)

EN_DOMAINS: tuple[str, ...] = (
    "education", "public health", "agriculture", "urban planning", "software development",
    "small businesses", "scientific research", "the arts", "sports", "transportation",
    "energy policy", "family life", "tourism", "journalism", "manufacturing", "finance",
    "environmental science", "history", "language learning", "healthcare", "retail",
)

EN_AUDIENCES: tuple[str, ...] = (
    "students", "beginners", "teachers", "parents", "managers", "engineers", "researchers",
    "young readers", "local officials", "new employees", "travelers", "volunteers",
)

EN_GENRES: tuple[str, ...] = (
    "poem", "story", "essay", "dialogue", "summary", "letter", "news report", "product review",
    "speech", "riddle", "recipe", "lesson plan",
)

KO_NOUNS: tuple[str, ...] = tuple(
    """
    기술 교육 환경 건강 경제 문화 역사 과학 음식 여행 운동 음악 미술 언어 정치 사회 가족
    친구 학교 회사 도시 농촌 바다 산 강 날씨 계절 시간 공간 데이터 인공지능 로봇 컴퓨터
    스마트폰 인터넷 게임 영화 드라마 책 신문 소설 시 철학 심리학 의학 병원 의사 간호사
    선생님 학생 부모 아이 노인 청년 동물 식물 나무 꽃 물 에너지 전기 자동차 버스 지하철
    비행기 자전거 도로 건물 집 정원 시장 가게 은행 투자 저축 소비 생산 무역 법 규칙 제도
    정책 선거 자유 평등 책임 행복 우정 신뢰 협력 경쟁 창의성 습관 목표 계획 전략 문제
    해결책 아이디어 연구 실험 결과 분석 통계 기후 오염 재활용 쓰레기 안전 보안 개인정보
    소통 대화 발표 글쓰기 독서 수학 물리학 화학 생물학 지리 우주 별 달 태양 축제 전통
    """.split()
)

KO_ADJECTIVES: tuple[str, ...] = (
    "중요한", "새로운", "다양한", "효과적인", "복잡한", "간단한", "지속 가능한", "현대적인",
    "전통적인", "창의적인", "작은", "커다란", "빠른", "느린", "오래된", "흥미로운", "어려운",
    "쉬운", "실용적인", "과학적인", "사회적인", "경제적인", "개인적인", "디지털", "지역의",
    "세계적인", "안전한", "건강한", "균형 잡힌", "꾸준한", "조용한", "밝은",
)

KO_ADVERBS: tuple[str, ...] = (
    "빠르게", "꾸준히", "효과적으로", "안정적으로", "크게", "천천히", "자연스럽게",
    "체계적으로", "조금씩", "분명하게", "깊이", "자주",
)

KO_GENRES: tuple[str, ...] = (
    "시", "짧은 이야기", "에세이", "광고 문구", "편지", "발표문", "일기", "대화문", "요약문",
)

KO_AUDIENCES: tuple[str, ...] = (
    "초등학생", "중학생", "대학생", "직장인", "부모님", "어르신", "초보자", "선생님", "외국인",
)
