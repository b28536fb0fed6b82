-- A trip as it was at a point in time, from the history table (SCD type 2) on Spectrum: the
-- version whose interval [_valid_from, _valid_to) holds that instant (_valid_to is null while
-- current). Drop the trip_id filter for the whole table as of that instant.
with params as (
    select
        42 as trip_id,
        '2026-11-22 10:30:00'::timestamp as as_of
)

select
    versions.trip_id,
    versions.route_id,
    versions.destination,
    versions.source_location,
    versions._valid_from,
    versions._valid_to
from cdc_lake.delta_emr_source_travel_details_history_spectrum as versions
cross join params
where
    versions.trip_id = params.trip_id
    and versions._valid_from <= params.as_of
    and (versions._valid_to is null or versions._valid_to > params.as_of)
