-- The original blog post's query: trips per destination, on the Spectrum table over the symlink manifests.
select
    destination,
    count(*) as trips
from cdc_lake.delta_emr_source_travel_details_spectrum
group by destination
order by trips desc, destination asc
