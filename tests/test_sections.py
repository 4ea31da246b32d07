"""The sectionizer: findings/impression split, and in-report comparison statements."""

from radbatch.archive.sections import mentions_comparison, split_sections


def test_headers_any_case_and_order():
    s = split_sections("Impression: Normal.\nfindings: Clear lungs.\nCOMPARISON: None.")
    assert s.findings == "Clear lungs." and s.impression == "Normal." and s.comparison == "None."
    assert not mentions_comparison("", s)


def test_no_headers_means_whole_text_is_findings():
    s = split_sections("The lungs are clear. No effusion.")
    assert s.findings == "The lungs are clear. No effusion." and s.impression is None and not s.has_headers


def test_headers_without_findings():
    s = split_sections("INDICATION: pain\nIMPRESSION: normal")
    assert s.findings is None and s.impression == "normal"


def test_comparison_statements():
    s = split_sections("COMPARISON: CT 2020-01-01.\nFINDINGS: stable.\nIMPRESSION: stable")
    assert mentions_comparison("", s)
    s2 = split_sections("FINDINGS: Effusion has increased since the prior study.\nIMPRESSION: worse")
    assert mentions_comparison("", s2)


def test_a_comparison_section_that_names_no_study_is_not_a_comparison():
    for none in ("None.", "None available.", "NONE AVAILABLE.", "None provided", "No prior studies.",
                 "No previous imaging available.", "No comparison available.", "Not available.", "N/A"):
        assert not mentions_comparison("", split_sections(f"COMPARISON: {none}\nFINDINGS: Clear.\nIMPRESSION: Normal.")), none
    for some in ("Chest radiograph 2021-03-02.", "Prior CT from March.", "None available; outside CT reviewed."):
        assert mentions_comparison("", split_sections(f"COMPARISON: {some}\nFINDINGS: Clear.\nIMPRESSION: Normal.")), some


def test_a_comparison_section_that_names_no_study_overrides_wording_in_the_body():
    # Template residue ("new since the prior study") under "COMPARISON: None." has no prior to compare with.
    s = split_sections("COMPARISON: None.\nFINDINGS: 1.3 cm mass, new since the prior study.\nIMPRESSION: Mass.")
    assert not mentions_comparison("", s)


def test_a_follow_up_recommendation_is_not_a_comparison():
    for text in ("Probably benign. Recommend short-interval follow-up ultrasound in 6 months.",
                 "Suggest short interval follow-up imaging.", "Interval follow-up CT in 3 months."):
        assert not mentions_comparison(text, split_sections(text)), text
    for text in ("Interval increase in the right effusion.", "Intervally decreased nodule.",
                 "No interval change."):
        assert mentions_comparison(text, split_sections(text)), text
