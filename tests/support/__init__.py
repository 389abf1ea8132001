"""What the tests share: helpers, fixtures and artefacts kept between runs. Test modules import
from here, never from one another."""
