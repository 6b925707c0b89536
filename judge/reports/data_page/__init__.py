"""The data page of a run (`just view --run RUN`, `judge.view(run)`): RUN/report/data.html, every
stage's records on one self-contained page, read as a person reads them.

- tables.py     columnar, dictionary-coded tables; a seeded sample of a file larger than the page holds
- collect.py    the run's records as the page's tables: kept, rejected, answers with their grades, curations
- page.py       the data as JSON inside the page (escaped), the page around it, and the file
- list_view.js  the page's core: elements built from text nodes only, and the list view (search,
                filters, ranges, sort, pages, rows opened to their details)
- tabs.js       the kept, rejected and curation tabs; answers.js the answers side by side; app.js the page
- viewer.css    its styles
"""

from judge.reports.data_page.page import MAX_ROWS, DataPage, write_data_page

__all__ = ["MAX_ROWS", "DataPage", "write_data_page"]
