"""N+1 loops written the way applications write them, for tests/integration/n_plus_one_test.

Usage: n_plus_one_orm.py PORT CASE, where CASE is one of
  sqlalchemy-lazy     SQLAlchemy 1.4: lazy loading of Parent.children in a loop over 50 parents
  sqlalchemy-eager    the same loop with selectinload(Parent.children): one query for the children
  django-loop         Django 3.2: for b in Book.objects.all(): b.author.name (50 books)
  django-related      the same loop over Book.objects.select_related("author"): one JOIN
Both ORMs use psycopg2 (Debian python3-psycopg2), which sends values inlined in a simple Query.
The tables are made (and filled) by the script, through pgrelay on 127.0.0.1:PORT, database
postgres, user postgres. Prints "ok" and the number of rows it read.
"""
import sys

PORT = int(sys.argv[1])
CASE = sys.argv[2]
PARENTS = 50


def sqlalchemy_case(eager):
    from sqlalchemy import Column, ForeignKey, Integer, String, create_engine
    from sqlalchemy.orm import Session, declarative_base, relationship, selectinload

    Base = declarative_base()

    class Parent(Base):
        __tablename__ = "nplus_parent"
        id = Column(Integer, primary_key=True)
        name = Column(String(50))
        children = relationship("Child", lazy="select")

    class Child(Base):
        __tablename__ = "nplus_child"
        id = Column(Integer, primary_key=True)
        parent_id = Column(Integer, ForeignKey("nplus_parent.id"))
        name = Column(String(50))

    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{PORT}/postgres")
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        for i in range(1, PARENTS + 1):
            s.add(Parent(id=i, name=f"p{i}", children=[Child(name=f"c{i}a"), Child(name=f"c{i}b")]))
        s.commit()
    read = 0
    with Session(engine) as s:
        query = s.query(Parent).options(selectinload(Parent.children)) if eager else s.query(Parent)
        for p in query.all():
            read += len(p.children)
    engine.dispose()
    return read


def django_case(related):
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
                               "HOST": "127.0.0.1", "PORT": str(PORT)}},
        INSTALLED_APPS=["django.contrib.contenttypes"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.db import connection, models

    class Author(models.Model):
        name = models.CharField(max_length=50)

        class Meta:
            app_label = "contenttypes"   # an installed app: this script is not one
            db_table = "nplus_author"

    class Book(models.Model):
        title = models.CharField(max_length=50)
        author = models.ForeignKey(Author, on_delete=models.CASCADE)

        class Meta:
            app_label = "contenttypes"
            db_table = "nplus_book"

    with connection.cursor() as c:
        c.execute("drop table if exists nplus_book, nplus_author")
    with connection.schema_editor() as editor:
        editor.create_model(Author)
        editor.create_model(Book)
    # Author ids (1001...) unlike book ids (1...), and books not in author order: the lineage of
    # the author lookups can only be the books' author_id column.
    authors = [Author.objects.create(id=1000 + i, name=f"a{i}") for i in range(1, PARENTS + 1)]
    for i in range(1, PARENTS + 1):
        Book.objects.create(title=f"b{i}", author=authors[(i * 7) % PARENTS])
    read = 0
    books = Book.objects.select_related("author") if related else Book.objects.all()
    for b in books:
        read += len(b.author.name) > 0
    connection.close()
    return read


if CASE == "sqlalchemy-lazy":
    n = sqlalchemy_case(eager=False)
elif CASE == "sqlalchemy-eager":
    n = sqlalchemy_case(eager=True)
elif CASE == "django-loop":
    n = django_case(related=False)
elif CASE == "django-related":
    n = django_case(related=True)
else:
    sys.exit(f"unknown case {CASE}")
print("ok", n)
