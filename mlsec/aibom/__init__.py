"""The AI bill of materials: models and their files, cards, datasets, git provenance and
completeness (facts for the CycloneDX renderer in :mod:`mlsec.render.cyclonedx`)."""
